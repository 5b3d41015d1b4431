//! Why a break is a break, in words a person reads at a glance, in both
//! languages: "amount differs: ours 88.50 CNY, the biller's 85.80 CNY".

use super::i18n::Lang;
use super::layout::minor;
use crate::domain::recon::breaks::BreakStatus;
use crate::domain::recon::matching::Category;
use crate::store::recon::BreakRow;

fn amount(v: Option<i64>, currency: &str) -> String {
    v.map(|m| minor(m, currency)).unwrap_or_else(|| "—".into())
}

/// The sentence for a break.
pub fn why(b: &BreakRow, lang: Lang) -> String {
    let ours = amount(b.our_amount_minor, &b.currency);
    let theirs = amount(b.their_amount_minor, &b.currency);
    let bank = b.category.is_bank();
    match (lang, b.category) {
        (Lang::En, Category::AmountMismatch) => {
            format!("amount differs: ours {ours}, the biller's {theirs}")
        }
        (Lang::Zh, Category::AmountMismatch) => {
            format!("金额不符：我方 {ours}，缴费单位 {theirs}")
        }
        (Lang::En, Category::MissingAtBiller) => {
            format!("missing at the biller: we hold {ours} as paid, the biller has no record")
        }
        (Lang::Zh, Category::MissingAtBiller) => {
            format!("缴费单位无记录：我方 {ours} 已缴，对方未见")
        }
        (Lang::En, Category::MissingAtUs) => {
            format!("missing at us: the biller credited {theirs} we do not hold as paid")
        }
        (Lang::Zh, Category::MissingAtUs) => {
            format!("我方无记录：缴费单位已入账 {theirs}，我方未记为成功")
        }
        (Lang::En, Category::DuplicateAtBiller) => {
            format!("credited twice by the biller or hub: {theirs} for our {ours}")
        }
        (Lang::Zh, Category::DuplicateAtBiller) => {
            format!("重复入账：对方入账 {theirs}，我方 {ours}")
        }
        (Lang::En, Category::StatusMismatch) => {
            format!("status differs: we hold {ours} as paid, the biller's record says it failed")
        }
        (Lang::Zh, Category::StatusMismatch) => {
            format!("状态不符：我方 {ours} 已缴，对方记录为失败")
        }
        (Lang::En, Category::ReferenceMismatch) => format!(
            "biller reference differs: ours {:?}, theirs {:?}",
            b.our_reference, b.their_reference
        ),
        (Lang::Zh, Category::ReferenceMismatch) => format!(
            "缴费单位参考号不符：我方 {:?}，对方 {:?}",
            b.our_reference, b.their_reference
        ),
        (Lang::En, Category::SettlementMismatch) => {
            format!("the bank moved {theirs}; the batch or statement says {ours}")
        }
        (Lang::Zh, Category::SettlementMismatch) => {
            format!("银行实际划转 {theirs}，批次或对账单应为 {ours}")
        }
        (Lang::En, Category::UnmatchedBankLine) => {
            format!("a bank line of {theirs} we cannot attribute to a batch or a payment app")
        }
        (Lang::Zh, Category::UnmatchedBankLine) => {
            format!("无法归属的银行流水：{theirs}")
        }
        (Lang::En, Category::StatementGap) => {
            format!("gap or overlap in the bank statements: {}", b.detail)
        }
        (Lang::Zh, Category::StatementGap) => {
            format!("银行对账单不连续或重叠：{}", b.detail)
        }
    }
    .replace("the biller", if bank { "the bank" } else { "the biller" })
}

/// A category's name.
pub fn category(c: Category, lang: Lang) -> &'static str {
    match (lang, c) {
        (Lang::En, Category::MissingAtBiller) => "missing at the biller",
        (Lang::En, Category::MissingAtUs) => "missing at us",
        (Lang::En, Category::AmountMismatch) => "amount differs",
        (Lang::En, Category::DuplicateAtBiller) => "credited twice",
        (Lang::En, Category::StatusMismatch) => "status differs",
        (Lang::En, Category::ReferenceMismatch) => "reference differs",
        (Lang::En, Category::SettlementMismatch) => "settlement differs",
        (Lang::En, Category::UnmatchedBankLine) => "unmatched bank line",
        (Lang::En, Category::StatementGap) => "statement gap",
        (Lang::Zh, Category::MissingAtBiller) => "对方无记录",
        (Lang::Zh, Category::MissingAtUs) => "我方无记录",
        (Lang::Zh, Category::AmountMismatch) => "金额不符",
        (Lang::Zh, Category::DuplicateAtBiller) => "重复入账",
        (Lang::Zh, Category::StatusMismatch) => "状态不符",
        (Lang::Zh, Category::ReferenceMismatch) => "参考号不符",
        (Lang::Zh, Category::SettlementMismatch) => "清算金额不符",
        (Lang::Zh, Category::UnmatchedBankLine) => "未匹配银行流水",
        (Lang::Zh, Category::StatementGap) => "对账单断档",
    }
}

/// A break status's name.
pub fn status(s: BreakStatus, lang: Lang) -> &'static str {
    match (lang, s) {
        (Lang::En, BreakStatus::Open) => "open",
        (Lang::En, BreakStatus::Investigating) => "investigating",
        (Lang::En, BreakStatus::PendingApproval) => "waiting for approval",
        (Lang::En, BreakStatus::Resending) => "re-sending",
        (Lang::En, BreakStatus::Resolved) => "resolved",
        (Lang::En, BreakStatus::WrittenOff) => "written off",
        (Lang::Zh, BreakStatus::Open) => "待处理",
        (Lang::Zh, BreakStatus::Investigating) => "调查中",
        (Lang::Zh, BreakStatus::PendingApproval) => "待审批",
        (Lang::Zh, BreakStatus::Resending) => "重发中",
        (Lang::Zh, BreakStatus::Resolved) => "已解决",
        (Lang::Zh, BreakStatus::WrittenOff) => "已核销",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn row(category: Category, ours: Option<i64>, theirs: Option<i64>) -> BreakRow {
        BreakRow {
            id: 1,
            business_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            scope: "sh-water".into(),
            category,
            subject: "p".into(),
            our_reference: "o".into(),
            their_reference: "t".into(),
            our_amount_minor: ours,
            their_amount_minor: theirs,
            currency: "CNY".into(),
            detail: "d".into(),
            evidence: serde_json::json!({}),
            status: BreakStatus::Open,
            owner: None,
            proposal: None,
            resolution: None,
            found_by_run: None,
            opened_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn amounts_differ_in_words() {
        let b = row(Category::AmountMismatch, Some(8850), Some(8580));
        assert_eq!(
            why(&b, Lang::En),
            "amount differs: ours 88.50 CNY, the biller's 85.80 CNY"
        );
        assert_eq!(
            why(&b, Lang::Zh),
            "金额不符：我方 88.50 CNY，缴费单位 85.80 CNY"
        );
    }

    #[test]
    fn every_category_has_words_in_both_languages() {
        for c in Category::ALL {
            let b = row(c, Some(100), Some(200));
            for lang in [Lang::En, Lang::Zh] {
                assert!(!why(&b, lang).is_empty());
                assert!(!category(c, lang).is_empty());
            }
            assert_ne!(category(c, Lang::En), category(c, Lang::Zh));
        }
        let bank = row(Category::SettlementMismatch, Some(100), Some(200));
        assert!(
            !why(&bank, Lang::En).contains("biller"),
            "{}",
            why(&bank, Lang::En)
        );
    }
}
