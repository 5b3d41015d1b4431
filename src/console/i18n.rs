//! The console's two languages. Every label is one variant of [`L`] with
//! its English and Chinese text side by side, so a label cannot exist in
//! one language only. The language comes from the `bc_lang` cookie (the
//! switch on every page), else from `Accept-Language`.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn code(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The html `lang` attribute.
    pub fn html(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    pub fn other(&self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// `bc_lang` cookie first, then the best of `Accept-Language` (by its
    /// q values; English when nothing matches).
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::session::cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v))
        {
            return l;
        }
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        accept_language(accept)
    }

    pub fn t(&self, label: L) -> &'static str {
        match self {
            Lang::En => label.en(),
            Lang::Zh => label.zh(),
        }
    }
}

pub const LANG_COOKIE: &str = "bc_lang";

/// The best supported language of an `Accept-Language` value.
pub fn accept_language(value: &str) -> Lang {
    let mut best: Option<(u32, Lang)> = None;
    for part in value.split(',') {
        let mut bits = part.trim().split(';');
        let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = bits
            .find_map(|b| b.trim().strip_prefix("q=").map(str::to_string))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let q = (q.clamp(0.0, 1.0) * 1000.0) as u32;
        let lang = if tag == "zh" || tag.starts_with("zh-") {
            Lang::Zh
        } else if tag == "en" || tag.starts_with("en-") {
            Lang::En
        } else {
            continue;
        };
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::En)
}

macro_rules! labels {
    ($($name:ident => $en:literal, $zh:literal;)*) => {
        /// A label of the console, in both languages.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum L { $($name,)* }

        impl L {
            pub const ALL: &'static [L] = &[$(L::$name,)*];
            pub fn en(&self) -> &'static str {
                match self { $(L::$name => $en,)* }
            }
            pub fn zh(&self) -> &'static str {
                match self { $(L::$name => $zh,)* }
            }
        }
    };
}

labels! {
    Console => "billclear console", "billclear 控制台";
    SignIn => "Sign in", "登录";
    SignOut => "Sign out", "退出";
    SignInHelp => "Paste your staff token (bcstaff_…). It is checked once; the console then keeps a session.", "请粘贴您的员工令牌（bcstaff_…）。令牌只校验一次，之后控制台保持会话。";
    StaffToken => "Staff token", "员工令牌";
    SignedInAs => "Signed in as", "当前用户";
    SignedOut => "You are signed out.", "您已退出。";
    SessionEnded => "Your session has ended (signed out, idle too long, token rotated or user disabled). Sign in again.", "会话已结束（已退出、闲置过久、令牌已轮换或用户已停用）。请重新登录。";
    BadToken => "That token is not valid (rotated, never issued, or the user is disabled).", "令牌无效（已轮换、从未签发或用户已停用）。";
    LinkUsed => "This sign-in link is used, expired or no longer valid.", "此登录链接已使用、已过期或已失效。";
    Language => "中文", "English";
    Home => "Home", "首页";
    Days => "Day", "日终";
    Breaks => "Breaks", "差错";
    Payments => "Payments", "支付";
    Files => "Files", "文件";
    Settlement => "Settlement", "清算";
    Routes => "Routes", "路由";
    Complaints => "Complaints", "投诉";
    Complaint => "Complaint", "投诉单";
    ComplaintType => "Type", "类型";
    TimeLeft => "Time left", "剩余时间";
    Overdue => "Overdue by", "已超时";
    DueAt => "Due", "到期";
    RaisedAt => "Raised", "提出时间";
    Description => "What the customer says", "客户描述";
    Refund => "Refund", "退款";
    RefundWaiting => "A refund is proposed and waits for an approver", "已提议退款，等待审批";
    ProposeRefund => "Propose a refund", "提议退款";
    ApproveRefund => "Approve the refund", "批准退款";
    DeclineRefund => "Decline the refund", "拒绝退款";
    ResolveComplaint => "Resolve (no money moves)", "办结（不涉及资金）";
    RejectComplaint => "Reject", "驳回";
    AskBillerAgain => "Ask the biller again", "再次向缴费单位查询";
    ComplaintReport => "Report by biller and month", "按缴费单位和月份统计";
    Month => "Month", "月份";
    Raised => "Raised", "提出";
    Closed => "Closed", "已办结";
    WithinTime => "Within time", "按时办结";
    StillOpen => "Still open", "未办结";
    Median => "Median", "中位数";
    Worst => "Worst", "最长";
    Today => "Today", "今天";
    Yesterday => "Yesterday", "昨天";
    DayOverview => "Day overview", "日终概览";
    BusinessDate => "Business date", "业务日期";
    Biller => "Biller", "缴费单位";
    Channel => "Payment app", "支付机构";
    States => "Payments by state", "各状态支付";
    Amount => "Amount", "金额";
    Count => "Count", "笔数";
    Batch => "Settlement batch", "清算批次";
    BankPaid => "Bank paid", "银行已付";
    NotPaid => "not paid", "未付";
    NoBatch => "no batch", "无批次";
    Recon => "Reconciliation", "对账";
    NotReconciled => "not reconciled", "未对账";
    ReconFailed => "run failed", "对账失败";
    Reconciled => "reconciled", "已对账";
    OpenBreaks => "Open breaks", "未结差错";
    Oldest => "oldest", "最早";
    None => "none", "无";
    StatementTotal => "Statement total", "对账单合计";
    FundingReceived => "Funding received", "已收资金";
    NeedsAPerson => "needs a person", "需人工处理";
    Filter => "Filter", "筛选";
    Clear => "Clear", "清除";
    From => "From", "自";
    To => "To", "至";
    Category => "Category", "类别";
    Status => "Status", "状态";
    Assignee => "Assignee", "处理人";
    Any => "any", "全部";
    OpenOnly => "open only", "仅未结";
    MinAmount => "Amount at least", "金额不低于";
    Sort => "Sort", "排序";
    OldestFirst => "oldest first", "最早优先";
    NewestFirst => "newest first", "最新优先";
    LargestFirst => "largest amount first", "金额最大优先";
    Why => "Why it is a break", "差错原因";
    Age => "Age", "时长";
    Holder => "Held by", "处理人";
    Nobody => "nobody", "无人";
    Page => "Page", "页";
    Previous => "Previous", "上一页";
    Next => "Next", "下一页";
    Results => "results", "条结果";
    Break => "Break", "差错";
    Ours => "Our record", "我方记录";
    Theirs => "Their record", "对方记录";
    Evidence => "Evidence", "证据";
    CameFrom => "Came from", "来源";
    Timeline => "Payment timeline", "支付时间线";
    History => "History", "处理记录";
    Actions => "Actions", "操作";
    Assign => "Assign", "分派";
    Investigate => "Investigate", "开始调查";
    Comment => "Comment", "备注";
    Propose => "Propose a resolution", "提议处理方式";
    Resolution => "Resolution", "处理方式";
    Note => "Note", "说明";
    Connector => "Route (resend only)", "路由（仅重发）";
    Approve => "Approve", "批准";
    Decline => "Decline", "驳回";
    Reason => "Reason", "原因";
    Proposal => "Proposal", "提议";
    ProposedBy => "proposed by", "提议人";
    YouProposed => "You proposed this; another approver must approve it.", "此提议由您提出，须由另一位审批人批准。";
    ViewerOnly => "Your role can read but not act.", "您的角色只能查看，不能操作。";
    Done => "Done.", "已完成。";
    Refused => "Refused", "已拒绝";
    At => "At", "时间";
    Actor => "By", "操作人";
    Action => "Action", "动作";
    Subject => "Subject", "对象";
    References => "References", "参考号";
    OurReference => "Our reference", "我方参考号";
    TheirReference => "Their reference", "对方参考号";
    Detail => "Detail", "详情";
    NotFound => "Not found", "未找到";
    Forbidden => "Not allowed", "无权操作";
    BadRequest => "The request was refused", "请求被拒绝";
    ServerError => "Something failed on our side; nothing was changed. Try again, or tell an operator.", "服务端出错，未做任何更改。请重试或联系运维人员。";
    Audit => "Audit trail", "审计记录";
    Role => "Role", "角色";
    Account => "Account", "户号";
    Route => "Route", "路由";
    Export => "Export to Excel", "导出 Excel";
    RoleViewer => "viewer", "查看员";
    RoleOperator => "operator", "操作员";
    RoleApprover => "approver", "审批人";
    BankAccounts => "Bank accounts", "银行账户";
    // pages: payments, settlement, routes
    FindPayment => "Our reference, the app's reference, the biller's reference or an account number", "我方参考号、支付机构参考号、缴费单位参考号或户号";
    Search => "Search", "查询";
    NoPayments => "No payment matches.", "没有匹配的支付。";
    Payment => "Payment", "支付";
    AppReference => "App reference", "支付机构参考号";
    BillerReference => "Biller reference", "缴费单位参考号";
    AccountNumber => "Account number", "户号";
    BillReference => "Bill reference", "账单参考号";
    Created => "Created", "创建时间";
    Confirmed => "Confirmed", "确认时间";
    Attempts => "Dispatch attempts", "发送记录";
    Kind => "Kind", "类型";
    Outcome => "Outcome", "结果";
    Process => "Process", "进程";
    Inquiry => "status inquiry", "状态查询";
    Finished => "Finished", "完成时间";
    Callbacks => "Callbacks to the app", "支付机构回调";
    Delivered => "delivered", "已送达";
    Abandoned => "abandoned", "已放弃";
    Waiting => "waiting", "等待中";
    Journals => "Ledger journals", "账务凭证";
    LedgerAccount => "Ledger account", "科目";
    Side => "Side", "方向";
    Layer => "Layer", "层级";
    Returns => "Returns", "退回";
    BreaksAbout => "Breaks about it", "相关差错";
    Batches => "Settlement batches", "清算批次";
    Gross => "Gross", "总额";
    Commission => "Commission", "手续费";
    Net => "Net", "净额";
    FilesWritten => "files written", "文件已生成";
    FilesFailed => "files failed", "文件生成失败";
    FilesPending => "files not written yet", "文件尚未生成";
    Download => "Download", "下载";
    Payouts => "Payouts", "付款";
    DueOn => "Due", "应付日期";
    NothingToPay => "nothing to pay", "无需付款";
    PaidOn => "Paid by the bank", "银行已付";
    NoBatches => "No batch is closed for this date.", "该日期没有已关闭的批次。";
    DueThisDate => "Payouts due on this date", "本日应付款项";
    Preferred => "preferred", "首选";
    CircuitHere => "Circuit (this process)", "熔断状态（本进程）";
    LastError => "Last error", "最近错误";
    EachProcess => "What each process sees", "各进程所见";
    NotReported => "not reported", "未上报";
    NotConfigured => "not configured here", "本进程未配置";
    SwitchRoute => "Switch new payments to", "新支付切换到";
    PriorityOrder => "priority order", "按优先级顺序";
    ConfirmSwitch => "Confirm the switch", "确认切换";
    InFlight => "Payments in flight on the current route", "当前路由上处理中的支付";
    SwitchNote => "Payments already sent stay on their route; only new payments take the new one.", "已发送的支付仍留在原路由；只有新支付走新路由。";
    Cancel => "Cancel", "取消";
    CurrentRoute => "Current route", "当前路由";
    NewRoute => "New route", "新路由";
    // bulk work and files
    UploadSheet => "Upload a sheet of resolutions", "上传处理表";
    Upload => "Upload", "上传";
    Uploads => "Uploads", "上传记录";
    UploadNumber => "Upload", "上传批次";
    SheetFile => "Sheet (.xlsx)", "表格文件（.xlsx）";
    SheetRow => "Sheet row", "表格行号";
    SheetRefused => "The sheet was refused; nothing was changed", "表格被拒绝，未做任何更改";
    UploadedBy => "Uploaded by", "上传人";
    UploadedAt => "Uploaded at", "上传时间";
    Rows => "Rows", "行数";
    Decide => "Decide", "审批";
    ApproveAll => "Approve (all or the selected rows)", "批准（全部或所选行）";
    DeclineAll => "Decline (all or the selected rows)", "驳回（全部或所选行）";
    SelectAll => "Select all", "全选";
    MakerCannotDecide => "You made these proposals: another approver decides them.", "这些提议由您提出，须由其他审批人审批。";
    NoUploads => "No uploads yet.", "暂无上传记录。";
    Source => "Source", "来源";
    Identity => "Identity", "标识";
    FileName => "File name", "文件名";
    Records => "Records", "记录数";
    Credited => "Credited", "已入账";
    Total => "Total", "合计";
    ImportedAt => "Imported at", "导入时间";
    ImportedBy => "Imported by", "导入人";
    Superseded => "Superseded by", "已被替代";
    ImportFile => "Import a counterparty file or bank statement", "导入对账文件或银行对账单";
    Import => "Import", "导入";
    FileRefused => "The file was refused; nothing was imported", "文件被拒绝，未导入任何内容";
    NoFiles => "No files for this date.", "该日期没有文件。";
    Dates => "Dates", "日期";
    Size => "Size", "大小";
    OptionalDate => "Business date (only for a file that does not say)", "业务日期（仅用于未注明日期的文件）";
}

/// A staff role's name.
pub fn role(lang: Lang, r: crate::domain::staff::StaffRole) -> &'static str {
    use crate::domain::staff::StaffRole;
    lang.t(match r {
        StaffRole::Viewer => L::RoleViewer,
        StaffRole::Operator => L::RoleOperator,
        StaffRole::Approver => L::RoleApprover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_both_languages_and_they_differ() {
        for l in L::ALL {
            assert!(!l.en().trim().is_empty(), "{l:?} en");
            assert!(!l.zh().trim().is_empty(), "{l:?} zh");
            // A Chinese label is Chinese: it has at least one CJK character
            // (the language switch shows the other language's name).
            if *l != L::Language {
                assert!(
                    l.zh()
                        .chars()
                        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{l:?}: {:?} is not Chinese",
                    l.zh()
                );
            }
        }
    }

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(accept_language(""), Lang::En);
        assert_eq!(accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(accept_language("en-US,en;q=0.9,zh;q=0.8"), Lang::En);
        assert_eq!(accept_language("fr-FR, zh;q=0.5"), Lang::Zh);
        assert_eq!(accept_language("de"), Lang::En);
        assert_eq!(accept_language("zh;q=0, en;q=0.1"), Lang::En);
        assert_eq!(accept_language("en;q=0.2, zh-TW;q=0.7"), Lang::Zh);
    }
}
