//! Finance staff: the people who run reconciliation and work its breaks.
//! Each has one role; roles are ordered (an approver can do everything an
//! operator can, an operator everything a viewer can). Users are never
//! deleted, only disabled, so that what they did stays attributable.

use std::fmt;

/// What a staff user may do. viewer: read; operator: read, work breaks,
/// propose resolutions; approver: an operator who may also approve
/// money-moving resolutions proposed by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Read.
    Viewer,
    /// Read, work breaks, propose resolutions.
    Operator,
    /// Everything an operator can, and approve money-moving resolutions
    /// proposed by someone else.
    Approver,
}

impl StaffRole {
    pub const ALL: [StaffRole; 3] = [StaffRole::Viewer, StaffRole::Operator, StaffRole::Approver];

    pub fn as_str(&self) -> &'static str {
        match self {
            StaffRole::Viewer => "viewer",
            StaffRole::Operator => "operator",
            StaffRole::Approver => "approver",
        }
    }

    pub fn parse(s: &str) -> Option<StaffRole> {
        match s {
            "viewer" => Some(StaffRole::Viewer),
            "operator" => Some(StaffRole::Operator),
            "approver" => Some(StaffRole::Approver),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            StaffRole::Viewer => 0,
            StaffRole::Operator => 1,
            StaffRole::Approver => 2,
        }
    }

    /// Whether this role may do what `needed` may (approver ⊇ operator ⊇ viewer).
    pub fn allows(&self, needed: StaffRole) -> bool {
        self.rank() >= needed.rank()
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffUser {
    /// Lowercase `[a-z0-9._-]{1,64}` (see [`check_staff_id`]).
    pub id: String,
    pub name: String,
    pub role: StaffRole,
    pub disabled: bool,
}

/// A staff user lacks the role an action needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this needs the {needed} role (or a higher one); staff user {user} is {has}")]
pub struct RoleInsufficient {
    pub user: String,
    pub has: StaffRole,
    pub needed: StaffRole,
}

impl StaffUser {
    /// Ok when the user's role allows `needed`. A disabled user may do nothing.
    pub fn require(&self, needed: StaffRole) -> Result<(), StaffRefusal> {
        if self.disabled {
            return Err(StaffRefusal::Disabled(self.id.clone()));
        }
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(StaffRefusal::Role(RoleInsufficient {
                user: self.id.clone(),
                has: self.role,
                needed,
            }))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffRefusal {
    #[error("staff user {0} is disabled")]
    Disabled(String),
    #[error(transparent)]
    Role(RoleInsufficient),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffError {
    #[error("staff user id {0:?} is invalid: use 1-64 characters of a-z, 0-9, '.', '_' or '-'")]
    InvalidId(String),
    #[error(
        "staff user name must be 1-200 characters without control characters and not only spaces"
    )]
    InvalidName,
    #[error("unknown staff role {0:?}: use viewer, operator or approver")]
    UnknownRole(String),
}

/// A staff user id: lowercase `[a-z0-9._-]{1,64}`.
pub fn check_staff_id(id: &str) -> Result<(), StaffError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_' || c == b'-'
        });
    if ok {
        Ok(())
    } else {
        Err(StaffError::InvalidId(id.chars().take(80).collect()))
    }
}

/// A display name: 1-200 characters, not blank, no control characters.
pub fn check_staff_name(name: &str) -> Result<(), StaffError> {
    let n = name.chars().count();
    if n == 0 || n > 200 || name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(StaffError::InvalidName);
    }
    Ok(())
}

impl StaffUser {
    /// A new (enabled) user, with its id and name checked.
    pub fn new(id: &str, name: &str, role: StaffRole) -> Result<StaffUser, StaffError> {
        check_staff_id(id)?;
        check_staff_name(name)?;
        Ok(StaffUser {
            id: id.to_string(),
            name: name.trim().to_string(),
            role,
            disabled: false,
        })
    }
}

impl std::str::FromStr for StaffRole {
    type Err = StaffError;
    fn from_str(s: &str) -> Result<StaffRole, StaffError> {
        StaffRole::parse(s).ok_or_else(|| StaffError::UnknownRole(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StaffRole::*;

    #[test]
    fn roles_are_ordered() {
        let table = [
            (Viewer, Viewer, true),
            (Viewer, Operator, false),
            (Viewer, Approver, false),
            (Operator, Viewer, true),
            (Operator, Operator, true),
            (Operator, Approver, false),
            (Approver, Viewer, true),
            (Approver, Operator, true),
            (Approver, Approver, true),
        ];
        for (has, needed, ok) in table {
            assert_eq!(has.allows(needed), ok, "{has} allows {needed}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in StaffRole::ALL {
            assert_eq!(StaffRole::parse(r.as_str()), Some(r));
            assert_eq!(r.as_str().parse::<StaffRole>(), Ok(r));
        }
        assert_eq!(StaffRole::parse("Approver"), None);
        assert_eq!(StaffRole::parse("admin"), None);
        assert!("".parse::<StaffRole>().is_err());
    }

    #[test]
    fn require_names_the_role_needed() {
        let u = StaffUser::new("li.wei", "Li Wei", Operator).unwrap();
        assert_eq!(u.require(Viewer), Ok(()));
        assert_eq!(u.require(Operator), Ok(()));
        let e = u.require(Approver).unwrap_err();
        assert_eq!(
            e,
            StaffRefusal::Role(RoleInsufficient {
                user: "li.wei".into(),
                has: Operator,
                needed: Approver
            })
        );
        assert!(e.to_string().contains("needs the approver role"), "{e}");
        let off = StaffUser {
            disabled: true,
            ..StaffUser::new("a", "A", Approver).unwrap()
        };
        assert_eq!(off.require(Viewer), Err(StaffRefusal::Disabled("a".into())));
    }

    #[test]
    fn ids_and_names() {
        for ok in ["a", "li.wei", "ops_1", "x-y", "0", &"a".repeat(64)] {
            assert!(check_staff_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Li", "a b", "a/b", "é", "a@b", &"a".repeat(65)] {
            assert!(check_staff_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            StaffUser::new("a", "  Li Wei ", Viewer).unwrap().name,
            "Li Wei"
        );
        for bad in ["", "   ", "a\nb", &"x".repeat(201)] {
            assert!(check_staff_name(bad).is_err(), "{bad:?}");
        }
    }
}
