//! Finance staff roles (placeholder until the staff branch lands).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StaffRole {
    Viewer,
    Operator,
    Approver,
}

impl StaffRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            StaffRole::Viewer => "viewer",
            StaffRole::Operator => "operator",
            StaffRole::Approver => "approver",
        }
    }

    pub fn allows(&self, needed: StaffRole) -> bool {
        *self >= needed
    }
}
