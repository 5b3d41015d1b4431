//! The biller seed file (TOML), parsed into domain billers. Every error
//! names the biller and the field.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveTime, Utc};
use serde::Deserialize;

use crate::domain::biller::{
    AccountRule, AmountRule, Biller, BillerKind, BillerStatus, Cutoff, MaintenanceWindow,
};
use crate::domain::check_digit::CheckDigit;
use crate::domain::ids::{BillerId, ConnectorId};
use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::settlement::{
    BankAccount, CommissionRule, FileFormat, Rounding, SettlementTerms,
};
use rust_decimal::Decimal;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    biller: Vec<BillerToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BillerToml {
    id: String,
    name: String,
    kind: String,
    currency: String,
    #[serde(default = "active")]
    status: String,
    cutoff: String,
    timezone: String,
    routes: Vec<String>,
    account: AccountToml,
    amount: AmountToml,
    maintenance: Option<MaintenanceToml>,
    settlement: Option<SettlementToml>,
    /// Reconciliation's matching tolerance, a decimal string in the
    /// biller's currency; absent: the stored one stays.
    recon_tolerance: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettlementToml {
    commission: CommissionToml,
    format: String,
    bank: BankToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommissionToml {
    percent: Option<String>,
    fixed: Option<String>,
    min: Option<String>,
    max: Option<String>,
    rounding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankToml {
    name: String,
    account: String,
    bic: String,
}

fn active() -> String {
    "active".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountToml {
    pattern: String,
    check_digit: Option<String>,
    example: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountToml {
    #[serde(default)]
    partial: bool,
    #[serde(default)]
    overpay: bool,
    min: String,
    max: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceToml {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

pub fn load(path: &Path) -> anyhow::Result<Vec<Biller>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Biller>> {
    let file: File = toml::from_str(text)?;
    if file.biller.is_empty() {
        bail!("no [[biller]] entries");
    }
    let mut out: Vec<Biller> = Vec::with_capacity(file.biller.len());
    for b in file.biller {
        let id = b.id.clone();
        let biller = convert(b).with_context(|| format!("biller {id:?}"))?;
        if out.iter().any(|o| o.id == biller.id) {
            bail!("biller {id:?} appears twice");
        }
        out.push(biller);
    }
    Ok(out)
}

fn convert(b: BillerToml) -> anyhow::Result<Biller> {
    let currency = Currency::from_code(&b.currency)?;
    let check_digit = b
        .account
        .check_digit
        .as_deref()
        .map(|n| {
            CheckDigit::from_name(n)
                .with_context(|| format!("account.check_digit {n:?}: use \"luhn\" or \"mod11\""))
        })
        .transpose()?;
    let money =
        |field: &str, s: &str| Money::parse(s, currency).with_context(|| format!("amount.{field}"));
    let min = money("min", &b.amount.min)?;
    let max = money("max", &b.amount.max)?;
    if max.amount() < min.amount() {
        bail!(
            "amount.max {} is below amount.min {}",
            max.amount(),
            min.amount()
        );
    }
    let status = match b.status.as_str() {
        "active" => BillerStatus::Active,
        "suspended" => BillerStatus::Suspended,
        other => bail!("status {other:?}: use \"active\" or \"suspended\""),
    };
    let maintenance = match b.maintenance {
        Some(m) if m.end <= m.start => bail!("maintenance.end must be after maintenance.start"),
        Some(m) => Some(MaintenanceWindow {
            start: m.start,
            end: m.end,
        }),
        None => None,
    };
    if b.routes.is_empty() {
        bail!("routes: give at least one connector id");
    }
    let routes = b
        .routes
        .iter()
        .map(|r| ConnectorId::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Biller {
        id: BillerId::parse(&b.id)?,
        name: b.name,
        kind: BillerKind::parse(&b.kind)
            .with_context(|| format!("kind {:?}: use water, electricity or gas", b.kind))?,
        currency,
        account_rule: AccountRule::new(&b.account.pattern, check_digit, b.account.example)?,
        amount_rule: AmountRule {
            partial: b.amount.partial,
            overpay: b.amount.overpay,
            min,
            max,
        },
        status,
        maintenance,
        cutoff: Cutoff {
            time: NaiveTime::parse_from_str(&b.cutoff, "%H:%M")
                .with_context(|| format!("cutoff {:?}: use HH:MM", b.cutoff))?,
            zone: b.timezone.parse().map_err(|_| {
                anyhow::anyhow!(
                    "timezone {:?} is not an IANA zone such as Asia/Shanghai",
                    b.timezone
                )
            })?,
        },
        routes,
        preferred_route: None,
        settlement: b
            .settlement
            .map(|s| terms(s, currency))
            .transpose()
            .context("settlement")?,
        recon_tolerance_minor: b
            .recon_tolerance
            .as_deref()
            .map(|t| tolerance(t, currency))
            .transpose()?,
    })
}

/// `recon_tolerance`: a decimal string ("0.05"), zero or more, with no more
/// decimals than the currency has; in minor units.
fn tolerance(text: &str, currency: Currency) -> anyhow::Result<i64> {
    let field = format!("recon_tolerance {text:?}");
    if text.trim_start().starts_with('-') {
        bail!("{field} is negative: give zero or more, e.g. \"0.05\"");
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = match text.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(text),
    };
    if !well_formed {
        bail!("{field} is not a decimal amount such as \"0.05\" (digits, at most one '.')");
    }
    let amount =
        Decimal::from_str_exact(text).map_err(|_| anyhow::anyhow!("{field} is too large"))?;
    let money = Money::new_or_zero(amount, currency).map_err(|e| match e {
        MoneyError::TooManyDecimals { scale, .. } => anyhow::anyhow!(
            "{field} has more decimals than {} allows ({scale})",
            currency.code()
        ),
        MoneyError::TooLarge(_) => anyhow::anyhow!("{field} is too large"),
        other => anyhow::anyhow!("{field}: {other}"),
    })?;
    i64::try_from(money.minor_units()).map_err(|_| anyhow::anyhow!("{field} is too large"))
}

fn terms(s: SettlementToml, currency: Currency) -> anyhow::Result<SettlementTerms> {
    let dec = |field: &str, v: &str| {
        Decimal::from_str_exact(v.trim())
            .map_err(|_| anyhow::anyhow!("commission.{field} {v:?} is not a decimal number"))
    };
    let opt = |field: &str, v: &Option<String>| v.as_deref().map(|v| dec(field, v)).transpose();
    let c = &s.commission;
    let commission = match (&c.percent, &c.fixed) {
        (Some(p), None) => CommissionRule::Percent {
            percent: dec("percent", p)?,
            min: opt("min", &c.min)?,
            max: opt("max", &c.max)?,
            rounding: match c.rounding.as_deref() {
                Some(r) => Rounding::parse(r).with_context(|| {
                    format!("commission.rounding {r:?}: use half-up, half-even, down or up")
                })?,
                None => bail!(
                    "commission.rounding: name the rounding rule (half-up, half-even, down or up)"
                ),
            },
        },
        (None, Some(f)) => {
            if c.min.is_some() || c.max.is_some() || c.rounding.is_some() {
                bail!("commission: a fixed fee takes no min, max or rounding");
            }
            CommissionRule::Fixed {
                per_item: dec("fixed", f)?,
            }
        }
        _ => {
            bail!("commission: give either percent (with rounding, optional min and max) or fixed")
        }
    };
    let t = SettlementTerms {
        commission,
        format: FileFormat::parse(&s.format)?,
        bank: BankAccount {
            name: s.bank.name,
            account: s.bank.account,
            bic: s.bank.bic,
        },
    };
    t.check(currency)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_seed_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml");
        let billers = load(&path).unwrap();
        assert!(billers.len() >= 6);
        for kind in [BillerKind::Water, BillerKind::Electricity, BillerKind::Gas] {
            assert!(
                billers.iter().filter(|b| b.kind == kind).count() >= 2,
                "{kind:?}"
            );
        }
        for b in &billers {
            let ex = b
                .account_rule
                .example
                .as_deref()
                .expect("every seed biller has an example account");
            b.account_rule.check(ex).unwrap();
            let terms = b
                .settlement
                .as_ref()
                .expect("every seed biller has settlement terms");
            terms.check(b.currency).unwrap();
            // As shipped, no seed sets a tolerance (tests and the bench
            // expect exact matching) ...
            assert_eq!(b.recon_tolerance_minor, None, "{}", b.id);
        }
        // ... and its commented example is one.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n# recon_tolerance = \"0.05\"\n"));
        let with = parse(&text.replace(
            "\n# recon_tolerance = \"0.05\"\n",
            "\nrecon_tolerance = \"0.05\"\n",
        ))
        .unwrap();
        let power = with.iter().find(|b| b.id.as_str() == "sh-power").unwrap();
        assert_eq!(power.recon_tolerance_minor, Some(5));
    }

    #[test]
    fn recon_tolerance_is_optional_and_checked() {
        let biller = |currency: &str, tolerance: Option<&str>| {
            format!(
                r#"
[[biller]]
id = "x-water"
name = "X"
kind = "water"
currency = "{currency}"
cutoff = "23:00"
timezone = "Asia/Shanghai"
routes = ["water-direct"]
account = {{ pattern = "[0-9]{{8}}" }}
amount = {{ min = "1", max = "10" }}
{}
"#,
                tolerance
                    .map(|t| format!("recon_tolerance = \"{t}\""))
                    .unwrap_or_default()
            )
        };
        let one = |text: String| parse(&text).map(|b| b[0].recon_tolerance_minor);
        // Absent: nothing to set (the stored tolerance stays).
        assert_eq!(one(biller("CNY", None)).unwrap(), None);
        // In minor units of the biller's currency; zero is exact matching.
        assert_eq!(one(biller("CNY", Some("0.05"))).unwrap(), Some(5));
        assert_eq!(one(biller("CNY", Some("1"))).unwrap(), Some(100));
        assert_eq!(one(biller("CNY", Some("0.10"))).unwrap(), Some(10));
        assert_eq!(one(biller("CNY", Some("0"))).unwrap(), Some(0));
        assert_eq!(one(biller("JPY", Some("3"))).unwrap(), Some(3));
        for (currency, bad, want) in [
            ("CNY", "-0.05", "negative"),
            ("CNY", "0.001", "more decimals than CNY allows (2)"),
            ("JPY", "0.5", "more decimals than JPY allows (0)"),
            ("CNY", "abc", "not a decimal amount"),
            ("CNY", "", "not a decimal amount"),
            ("CNY", "0,05", "not a decimal amount"),
            ("CNY", "+0.05", "not a decimal amount"),
            ("CNY", "5e-2", "not a decimal amount"),
            ("CNY", "99999999999999999999999", "too large"),
        ] {
            let err = format!("{:#}", parse(&biller(currency, Some(bad))).unwrap_err());
            assert!(
                err.contains("x-water") && err.contains("recon_tolerance") && err.contains(want),
                "{currency} {bad:?}: {err}"
            );
        }
        // A number rather than a string is refused too, naming the field.
        let err = format!(
            "{:#}",
            parse(&biller("CNY", None).replace("amount =", "recon_tolerance = 0.05\namount ="))
                .unwrap_err()
        );
        assert!(err.contains("recon_tolerance"), "{err}");
    }

    #[test]
    fn errors_name_the_biller_and_field() {
        let text = r#"
[[biller]]
id = "x-water"
name = "X"
kind = "water"
currency = "CNY"
cutoff = "23:00"
timezone = "Asia/Shanghai"
routes = ["water-direct"]
account = { pattern = "[0-9]{8}" }
amount = { min = "1.001", max = "10" }
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(
            err.contains("x-water") && err.contains("amount.min"),
            "{err}"
        );
        let bad_kind = text
            .replace("\"water\"\ncurrency", "\"steam\"\ncurrency")
            .replace("1.001", "1");
        let err = format!("{:#}", parse(&bad_kind).unwrap_err());
        assert!(err.contains("steam"), "{err}");
        // Settlement terms: the rounding must be named; min <= max; a fixed
        // fee takes no rounding.
        let good = text.replace("1.001", "1");
        let with = |terms: &str| {
            format!("{good}\n[biller.settlement]\nformat = \"csv\"\n{terms}\nbank = {{ name = \"X\", account = \"123\", bic = \"ICBKCNBJ\" }}\n")
        };
        assert!(parse(&with(
            "commission = { percent = \"0.3\", rounding = \"half-up\" }"
        ))
        .is_ok());
        for (terms, want) in [
            ("commission = { percent = \"0.3\" }", "rounding"),
            (
                "commission = { percent = \"0.3\", rounding = \"bankers\" }",
                "bankers",
            ),
            (
                "commission = { percent = \"0.3\", rounding = \"up\", min = \"2\", max = \"1\" }",
                "greater than max",
            ),
            (
                "commission = { fixed = \"0.8\", rounding = \"up\" }",
                "fixed fee takes no",
            ),
            ("commission = { fixed = \"0.801\" }", "decimal places"),
            (
                "commission = { percent = \"1\", fixed = \"1\" }",
                "either percent",
            ),
        ] {
            let err = format!("{:#}", parse(&with(terms)).unwrap_err());
            assert!(
                err.contains("x-water") && err.contains(want),
                "{terms}: {err}"
            );
        }
    }
}
