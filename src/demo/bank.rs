//! Our bank's side, for the demo, the tests and benches: a camt.053.001.08
//! statement of our settlement account as a bank writes it (valid against
//! `schemas/iso20022/camt.053.001.08.xsd`), and the statement of a day as
//! the bank would book it (every closed batch's payout, every payment app's
//! funding of its statements).

use chrono::NaiveDate;
use quick_xml::escape::escape;

use crate::domain::money::Currency;
use crate::domain::recon::matching::minor_to_string;
use crate::store::Store;

/// One entry the bank booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecEntry {
    pub amount_minor: i64,
    pub credit: bool,
    pub booking_date: NaiveDate,
    /// `AcctSvcrRef` (None: the bank gives none).
    pub bank_reference: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: String,
}

/// One statement of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSpec {
    pub message_id: String,
    pub statement_id: String,
    pub sequence: Option<i64>,
    pub account: String,
    pub currency: Currency,
    pub opening_minor: i64,
    pub opening_date: NaiveDate,
    pub date: NaiveDate,
    pub entries: Vec<SpecEntry>,
}

impl StatementSpec {
    /// Opening plus credits minus debits.
    pub fn closing_minor(&self) -> i64 {
        self.opening_minor
            + self
                .entries
                .iter()
                .map(|e| {
                    if e.credit {
                        e.amount_minor
                    } else {
                        -e.amount_minor
                    }
                })
                .sum::<i64>()
    }
}

fn amount(minor: i64, c: Currency) -> String {
    minor_to_string(minor.abs(), c.scale())
}

fn balance(code: &str, minor: i64, date: NaiveDate, c: Currency) -> String {
    format!(
        "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd><Dt><Dt>{date}</Dt></Dt></Bal>",
        c.code(),
        amount(minor, c),
        if minor < 0 { "DBIT" } else { "CRDT" }
    )
}

/// The statements as one camt.053.001.08 document.
pub fn camt053(statements: &[StatementSpec]) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>",
    );
    let first = statements.first().expect("at least one statement");
    x.push_str(&format!(
        "<GrpHdr><MsgId>{}</MsgId><CreDtTm>{}T18:00:00+08:00</CreDtTm></GrpHdr>",
        escape(&first.message_id),
        first.date
    ));
    for s in statements {
        let c = s.currency;
        x.push_str(&format!("<Stmt><Id>{}</Id>", escape(&s.statement_id)));
        if let Some(n) = s.sequence {
            x.push_str(&format!(
                "<ElctrncSeqNb>{n}</ElctrncSeqNb><LglSeqNb>{n}</LglSeqNb>"
            ));
        }
        x.push_str(&format!(
            "<CreDtTm>{d}T18:00:00+08:00</CreDtTm><FrToDt><FrDtTm>{d}T00:00:00+08:00</FrDtTm><ToDtTm>{d}T23:59:59+08:00</ToDtTm></FrToDt>",
            d = s.date
        ));
        x.push_str(&format!(
            "<Acct><Id><Othr><Id>{}</Id></Othr></Id><Ccy>{}</Ccy></Acct>",
            escape(&s.account),
            c.code()
        ));
        x.push_str(&balance("OPBD", s.opening_minor, s.opening_date, c));
        x.push_str(&balance("CLBD", s.closing_minor(), s.date, c));
        for e in &s.entries {
            x.push_str(&format!(
                "<Ntry><Amt Ccy=\"{}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt>",
                c.code(),
                amount(e.amount_minor, c),
                if e.credit { "CRDT" } else { "DBIT" },
                e.booking_date,
                e.booking_date
            ));
            if let Some(r) = &e.bank_reference {
                x.push_str(&format!("<AcctSvcrRef>{}</AcctSvcrRef>", escape(r)));
            }
            x.push_str("<BkTxCd/><NtryDtls><TxDtls>");
            if let Some(id) = &e.end_to_end_id {
                x.push_str(&format!(
                    "<Refs><EndToEndId>{}</EndToEndId></Refs>",
                    escape(id)
                ));
            }
            x.push_str(&format!(
                "<RmtInf><Ustrd>{}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
                escape(&e.remittance)
            ));
        }
        x.push_str("</Stmt>");
    }
    x.push_str("</BkToCstmrStmt></Document>\n");
    x
}

/// The day as our bank books it on `date`: each closed batch of the
/// business dates `dates` with a net to pay out (a debit with its pain.001's
/// EndToEndId), and each payment app paying what its statement of those
/// dates says it owes (a credit naming `BCF-<channel>-<date>`). Bank
/// references `BANK<date>-<n>`.
pub async fn day_entries(
    store: &dyn Store,
    dates: &[NaiveDate],
    date: NaiveDate,
) -> anyhow::Result<Vec<SpecEntry>> {
    let mut entries = Vec::new();
    let mut n = 0;
    let mut reference = || {
        n += 1;
        Some(format!("BANK{}-{n:04}", date.format("%Y%m%d")))
    };
    for d in dates {
        for b in store.batches(None, Some(*d)).await? {
            let c = Currency::from_code(&b.currency)?;
            let net = crate::store::postgres::recon_minor(b.totals.net(), c)?;
            if net > 0 {
                entries.push(SpecEntry {
                    amount_minor: net,
                    credit: false,
                    booking_date: date,
                    bank_reference: reference(),
                    end_to_end_id: Some(format!("BCE{}", b.id.simple())),
                    remittance: format!("billclear settlement {} {d}", b.biller_id),
                });
            }
        }
        for channel in store.statement_channels(*d).await? {
            let Some((owed, _)) = crate::reconcile::run::channel_owes(store, &channel, *d).await?
            else {
                continue;
            };
            if owed > 0 {
                entries.push(SpecEntry {
                    amount_minor: owed,
                    credit: true,
                    booking_date: date,
                    bank_reference: reference(),
                    end_to_end_id: None,
                    remittance: format!("{channel} funding BCF-{channel}-{}", d.format("%Y%m%d")),
                });
            }
        }
    }
    Ok(entries)
}
