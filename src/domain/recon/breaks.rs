//! A break as a work item (pure): its states, who may do what, and the
//! four-eyes rule for resolutions that move money.
//!
//! ```text
//! open ──assign/investigate──▶ investigating ──propose──▶ pending-approval ──approve──▶ resolved | written-off
//!   │                              │      ▲                    │
//!   └──────propose─────────────────┘      └──────decline───────┘
//!         (a resolution that moves no money resolves at once)
//! ```
//!
//! An approved `resend` passes through `resending` while the payment is on
//! its way (nothing but a comment is possible then); its answer resolves
//! the break or gives it back to the staff (`investigating`).
//!
//! Re-running a date never deletes a break: one no longer found is closed
//! as `resolved` by `cleared` (with the run as evidence), and one found
//! again after that is reopened.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::matching::Category;
use crate::domain::staff::StaffRole;

/// Where a break is in its workflow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BreakStatus {
    Open,
    Investigating,
    PendingApproval,
    /// An approved re-send is on its way to the new route.
    Resending,
    Resolved,
    WrittenOff,
}

impl BreakStatus {
    pub const ALL: [BreakStatus; 6] = [
        BreakStatus::Open,
        BreakStatus::Investigating,
        BreakStatus::PendingApproval,
        BreakStatus::Resending,
        BreakStatus::Resolved,
        BreakStatus::WrittenOff,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            BreakStatus::Open => "open",
            BreakStatus::Investigating => "investigating",
            BreakStatus::PendingApproval => "pending-approval",
            BreakStatus::Resending => "resending",
            BreakStatus::Resolved => "resolved",
            BreakStatus::WrittenOff => "written-off",
        }
    }

    pub fn parse(s: &str) -> Option<BreakStatus> {
        BreakStatus::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Resolved or written off: explained.
    pub fn is_closed(&self) -> bool {
        matches!(self, BreakStatus::Resolved | BreakStatus::WrittenOff)
    }
}

/// How a break is resolved.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ResolutionKind {
    /// Their record is right; our books follow it.
    AcceptBiller,
    /// Send the payment again through another route (only for a payment
    /// proven never to have arrived).
    Resend,
    /// Refund the payer: the ledger reversal of the payment.
    Reverse,
    /// Park the difference in `suspense`.
    WriteOff,
    /// Closed with no change anywhere: the break is explained by the note
    /// (for example, the biller reversed its duplicate credit itself).
    Explain,
    /// Not found by a later run of the same date (set by the run).
    Cleared,
}

impl ResolutionKind {
    pub const CHOSEN: [ResolutionKind; 5] = [
        ResolutionKind::AcceptBiller,
        ResolutionKind::Resend,
        ResolutionKind::Reverse,
        ResolutionKind::WriteOff,
        ResolutionKind::Explain,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ResolutionKind::AcceptBiller => "accept-biller",
            ResolutionKind::Resend => "resend",
            ResolutionKind::Reverse => "reverse",
            ResolutionKind::WriteOff => "write-off",
            ResolutionKind::Explain => "explain",
            ResolutionKind::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<ResolutionKind> {
        ResolutionKind::CHOSEN
            .into_iter()
            .chain([ResolutionKind::Cleared])
            .find(|k| k.as_str() == s)
    }

    /// A resolution a person may choose (not `cleared`, which only a
    /// re-run gives).
    pub fn parse_chosen(s: &str) -> Option<ResolutionKind> {
        ResolutionKind::CHOSEN.into_iter().find(|k| k.as_str() == s)
    }

    /// The chosen resolutions' names, for a refusal: "accept-biller, resend, …".
    pub fn chosen_names() -> String {
        ResolutionKind::CHOSEN.map(|k| k.as_str()).join(", ")
    }

    /// Whether this resolution applies to a break of `category`, and why not.
    pub fn check_applies(&self, category: Category) -> Result<(), String> {
        use Category::*;
        let ok = match self {
            ResolutionKind::AcceptBiller => {
                matches!(
                    category,
                    AmountMismatch | ReferenceMismatch | DuplicateAtBiller
                )
            }
            ResolutionKind::Resend => category == MissingAtBiller,
            ResolutionKind::Reverse => matches!(category, MissingAtBiller | StatusMismatch),
            ResolutionKind::WriteOff | ResolutionKind::Explain => true,
            ResolutionKind::Cleared => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} does not resolve a {} break{}",
                self.as_str(),
                category.as_str(),
                match self {
                    ResolutionKind::Resend =>
                        " (only a payment proven never to have arrived is sent again)",
                    ResolutionKind::Cleared => " (only a re-run clears a break)",
                    _ => "",
                }
            ))
        }
    }

    /// Whether the resolution moves money (and so needs a second person).
    pub fn moves_money(&self, category: Category) -> bool {
        match self {
            ResolutionKind::AcceptBiller => category == Category::AmountMismatch,
            ResolutionKind::Resend | ResolutionKind::Reverse | ResolutionKind::WriteOff => true,
            ResolutionKind::Explain | ResolutionKind::Cleared => false,
        }
    }

    /// The status a break ends in once this resolution is applied.
    pub fn closes_as(&self) -> BreakStatus {
        match self {
            ResolutionKind::WriteOff => BreakStatus::WrittenOff,
            _ => BreakStatus::Resolved,
        }
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub role: StaffRole,
}

/// A proposed resolution waiting for its checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub kind: ResolutionKind,
    pub maker: String,
    /// `resend`: the connector to send through.
    pub connector: Option<String>,
    pub note: String,
}

/// What someone wants to do with a break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Assign { owner: String },
    Investigate,
    Comment { text: String },
    Propose(Proposal),
    Approve,
    Decline { reason: String },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Assign { .. } => "assign",
            Action::Investigate => "investigate",
            Action::Comment { .. } => "comment",
            Action::Propose(_) => "propose",
            Action::Approve => "approve",
            Action::Decline { .. } => "decline",
        }
    }
}

/// A break's workflow state as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkState {
    pub category: Category,
    pub status: BreakStatus,
    pub owner: Option<String>,
    pub proposal: Option<Proposal>,
}

/// What an allowed action leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new state; nothing else to do.
    Moved(WorkState),
    /// The resolution is to be applied now (its money moved, if any), then
    /// the break closes as the resolution says.
    Apply {
        proposal: Proposal,
        approver: Option<String>,
        closes_as: BreakStatus,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("{action} needs the {needed} role; {user} is {has}")]
    Role {
        action: &'static str,
        needed: &'static str,
        user: String,
        has: &'static str,
    },
    #[error("the break is {status}: {action} is not possible")]
    State {
        action: &'static str,
        status: &'static str,
    },
    #[error("{0}")]
    NotApplicable(String),
    #[error("maker-checker: {user} proposed this resolution and cannot approve it; another approver must")]
    SameUser { user: String },
    #[error("{0}")]
    Invalid(String),
}

/// Decides an action on a break. Pure: the store applies the outcome and
/// records the event.
pub fn decide(state: &WorkState, actor: &Actor, action: &Action) -> Result<Outcome, WorkflowError> {
    let needed = match action {
        Action::Approve | Action::Decline { .. } => StaffRole::Approver,
        _ => StaffRole::Operator,
    };
    if !actor.role.allows(needed) {
        return Err(WorkflowError::Role {
            action: action.name(),
            needed: needed.as_str(),
            user: actor.user.clone(),
            has: actor.role.as_str(),
        });
    }
    let state_err = || WorkflowError::State {
        action: action.name(),
        status: state.status.as_str(),
    };
    let mut next = state.clone();
    if state.status == BreakStatus::Resending && !matches!(action, Action::Comment { .. }) {
        // The re-send's answer decides what happens next.
        return Err(state_err());
    }
    match action {
        Action::Comment { text } => {
            if text.trim().is_empty() {
                return Err(WorkflowError::Invalid("a comment needs text".into()));
            }
            Ok(Outcome::Moved(next))
        }
        Action::Assign { owner } => {
            if state.status.is_closed() {
                return Err(state_err());
            }
            if owner.trim().is_empty() {
                return Err(WorkflowError::Invalid("assign to whom?".into()));
            }
            next.owner = Some(owner.clone());
            if next.status == BreakStatus::Open {
                next.status = BreakStatus::Investigating;
            }
            Ok(Outcome::Moved(next))
        }
        Action::Investigate => {
            if state.status != BreakStatus::Open {
                return Err(state_err());
            }
            next.status = BreakStatus::Investigating;
            if next.owner.is_none() {
                next.owner = Some(actor.user.clone());
            }
            Ok(Outcome::Moved(next))
        }
        Action::Propose(p) => {
            if !matches!(state.status, BreakStatus::Open | BreakStatus::Investigating) {
                return Err(state_err());
            }
            p.kind
                .check_applies(state.category)
                .map_err(WorkflowError::NotApplicable)?;
            if p.note.trim().is_empty() {
                return Err(WorkflowError::Invalid(
                    "a resolution needs a note saying why".into(),
                ));
            }
            if p.kind == ResolutionKind::Resend && p.connector.is_none() {
                return Err(WorkflowError::Invalid(
                    "resend needs the connector to send through".into(),
                ));
            }
            let proposal = Proposal {
                maker: actor.user.clone(),
                ..p.clone()
            };
            if p.kind.moves_money(state.category) {
                next.status = BreakStatus::PendingApproval;
                next.proposal = Some(proposal);
                if next.owner.is_none() {
                    next.owner = Some(actor.user.clone());
                }
                Ok(Outcome::Moved(next))
            } else {
                Ok(Outcome::Apply {
                    closes_as: p.kind.closes_as(),
                    proposal,
                    approver: None,
                })
            }
        }
        Action::Approve => {
            let (BreakStatus::PendingApproval, Some(p)) = (state.status, &state.proposal) else {
                return Err(state_err());
            };
            if p.maker == actor.user {
                return Err(WorkflowError::SameUser {
                    user: actor.user.clone(),
                });
            }
            Ok(Outcome::Apply {
                closes_as: p.kind.closes_as(),
                proposal: p.clone(),
                approver: Some(actor.user.clone()),
            })
        }
        Action::Decline { reason } => {
            if state.status != BreakStatus::PendingApproval {
                return Err(state_err());
            }
            if reason.trim().is_empty() {
                return Err(WorkflowError::Invalid(
                    "say why the proposal is declined".into(),
                ));
            }
            next.status = BreakStatus::Investigating;
            next.proposal = None;
            Ok(Outcome::Moved(next))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(user: &str, role: StaffRole) -> Actor {
        Actor {
            user: user.into(),
            role,
        }
    }

    fn open(category: Category) -> WorkState {
        WorkState {
            category,
            status: BreakStatus::Open,
            owner: None,
            proposal: None,
        }
    }

    fn propose(kind: ResolutionKind) -> Action {
        Action::Propose(Proposal {
            kind,
            maker: String::new(),
            connector: None,
            note: "checked with the biller".into(),
        })
    }

    #[test]
    fn money_moving_resolutions_wait_for_a_different_approver() {
        let ann = actor("ann", StaffRole::Approver);
        let bob = actor("bob", StaffRole::Approver);
        let s = open(Category::MissingAtUs);
        let Outcome::Moved(pending) = decide(&s, &ann, &propose(ResolutionKind::WriteOff)).unwrap()
        else {
            panic!("a write-off waits for approval")
        };
        assert_eq!(pending.status, BreakStatus::PendingApproval);
        assert_eq!(pending.proposal.as_ref().unwrap().maker, "ann");
        assert_eq!(
            decide(&pending, &ann, &Action::Approve),
            Err(WorkflowError::SameUser { user: "ann".into() })
        );
        match decide(&pending, &bob, &Action::Approve).unwrap() {
            Outcome::Apply {
                approver,
                closes_as,
                proposal,
            } => {
                assert_eq!(approver.as_deref(), Some("bob"));
                assert_eq!(closes_as, BreakStatus::WrittenOff);
                assert_eq!(proposal.maker, "ann");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_break_being_re_sent_takes_nothing_but_comments() {
        let bob = actor("bob", StaffRole::Approver);
        let s = WorkState {
            category: Category::MissingAtBiller,
            status: BreakStatus::Resending,
            owner: Some("ann".into()),
            proposal: None,
        };
        for action in [
            Action::Approve,
            Action::Decline {
                reason: "no".into(),
            },
            Action::Investigate,
            Action::Assign {
                owner: "bob".into(),
            },
            propose(ResolutionKind::Reverse),
            propose(ResolutionKind::WriteOff),
        ] {
            assert!(
                matches!(decide(&s, &bob, &action), Err(WorkflowError::State { .. })),
                "{action:?}"
            );
        }
        assert!(decide(
            &s,
            &bob,
            &Action::Comment {
                text: "waiting".into()
            }
        )
        .is_ok());
    }

    #[test]
    fn roles_bound_what_each_user_may_do() {
        let viewer = actor("vic", StaffRole::Viewer);
        let op = actor("olga", StaffRole::Operator);
        let s = open(Category::MissingAtBiller);
        assert!(matches!(
            decide(&s, &viewer, &Action::Investigate),
            Err(WorkflowError::Role { .. })
        ));
        let Outcome::Moved(pending) = decide(&s, &op, &propose(ResolutionKind::Reverse)).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            decide(&pending, &op, &Action::Approve),
            Err(WorkflowError::Role {
                needed: "approver",
                ..
            })
        ));
    }

    #[test]
    fn explanations_resolve_at_once_and_resolutions_must_fit_the_category() {
        let op = actor("olga", StaffRole::Operator);
        let s = open(Category::DuplicateAtBiller);
        assert!(matches!(
            decide(&s, &op, &propose(ResolutionKind::Explain)).unwrap(),
            Outcome::Apply {
                approver: None,
                closes_as: BreakStatus::Resolved,
                ..
            }
        ));
        assert!(matches!(
            decide(&s, &op, &propose(ResolutionKind::Resend)),
            Err(WorkflowError::NotApplicable(_))
        ));
        let s = open(Category::MissingAtBiller);
        assert!(
            matches!(
                decide(&s, &op, &propose(ResolutionKind::Resend)),
                Err(WorkflowError::Invalid(_))
            ),
            "resend names its connector"
        );
    }

    #[test]
    fn a_declined_proposal_goes_back_to_investigating_and_closed_breaks_stay_closed() {
        let op = actor("olga", StaffRole::Operator);
        let ap = actor("bob", StaffRole::Approver);
        let Outcome::Moved(pending) = decide(
            &open(Category::UnmatchedBankLine),
            &op,
            &propose(ResolutionKind::WriteOff),
        )
        .unwrap() else {
            panic!()
        };
        let Outcome::Moved(back) = decide(
            &pending,
            &ap,
            &Action::Decline {
                reason: "find the payer first".into(),
            },
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(back.status, BreakStatus::Investigating);
        assert!(back.proposal.is_none());
        let mut closed = back.clone();
        closed.status = BreakStatus::Resolved;
        assert!(matches!(
            decide(&closed, &op, &propose(ResolutionKind::Explain)),
            Err(WorkflowError::State { .. })
        ));
    }
}
