use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role. Each role includes the permissions of the ones before it
/// (`User < Service < Dba < System`), so roles compare with `<`/`>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and writes its own partition of USER and STREAM tables; reads public SHARED tables.
    User,
    /// Backend services: SHARED table writes, `EXECUTE AS USER`, FLUSH.
    Service,
    /// Administrators: DDL, user management, `system.*`, backup/restore, KILL.
    Dba,
    /// Everything.
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "dba" => Ok(Role::Dba),
            "system" => Ok(Role::System),
            other => Err(format!("unknown role '{other}' (expected user, service, dba or system)")),
        }
    }
}
