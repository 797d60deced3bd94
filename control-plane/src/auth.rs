//! Who is calling and what they may do: principals (people and tools), roles, token scopes, and
//! the permission rules shared by every service.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether an actor is a person or a tool (configuration done by tools is tracked separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person signed in through OpenID Connect.
    Person,
    /// A tool authenticated with an API token (or the control plane itself).
    Tool,
}

impl ActorKind {
    /// `person` or `tool`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Person => "person",
            ActorKind::Tool => "tool",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<ActorKind> {
        match s {
            "person" => Some(ActorKind::Person),
            "tool" => Some(ActorKind::Tool),
            _ => None,
        }
    }
}

/// A person's role on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads and changes the apps of their teams (or apps that name them as owner).
    AppOwner,
    /// Reads everything, changes nothing.
    SecurityReviewer,
    /// Everything.
    Admin,
}

impl Role {
    /// `app-owner`, `security-reviewer` or `admin`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AppOwner => "app-owner",
            Role::SecurityReviewer => "security-reviewer",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Role, crate::Error> {
        match s {
            "app-owner" => Ok(Role::AppOwner),
            "security-reviewer" => Ok(Role::SecurityReviewer),
            "admin" => Ok(Role::Admin),
            other => Err(crate::Error::BadRequest(format!(
                "unknown role `{other}`, expected `app-owner`, `security-reviewer` or `admin`"
            ))),
        }
    }
}

/// A scope of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Read apps, intents, diffs, gateways and the audit log (of the named apps or teams when
    /// the token is restricted).
    #[serde(rename = "apps:read")]
    AppsRead,
    /// Plan, apply, roll back and delete the named apps or the apps of the named teams.
    #[serde(rename = "apps:write")]
    AppsWrite,
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
    /// Fetch snapshots and report their status (the config distribution endpoints).
    #[serde(rename = "gateway")]
    Gateway,
}

impl Scope {
    /// The scope as written: `apps:read`, `apps:write`, `admin`, `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AppsRead => "apps:read",
            Scope::AppsWrite => "apps:write",
            Scope::Admin => "admin",
            Scope::Gateway => "gateway",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Scope, crate::Error> {
        match s {
            "apps:read" => Ok(Scope::AppsRead),
            "apps:write" => Ok(Scope::AppsWrite),
            "admin" => Ok(Scope::Admin),
            "gateway" => Ok(Scope::Gateway),
            other => Err(crate::Error::BadRequest(format!(
                "unknown scope `{other}`, expected `apps:read`, `apps:write`, `admin` or `gateway`"
            ))),
        }
    }
}

/// What a principal is allowed, by where its identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A person with a role and teams.
    Person {
        /// The user's id.
        user_id: i64,
        /// The user's role.
        role: Role,
        /// Teams the user belongs to.
        teams: Vec<String>,
        /// The user's e-mail address (matched against intent owners).
        email: Option<String>,
    },
    /// A tool with an API token.
    Token {
        /// The token's id.
        token_id: i64,
        /// Its scopes.
        scopes: Vec<Scope>,
        /// Apps it is limited to (empty with `teams` empty: not limited).
        apps: Vec<String>,
        /// Teams it is limited to.
        teams: Vec<String>,
    },
    /// The control plane itself (bootstrap, background renewal).
    System,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name recorded in the audit log: a user name, `token:<name>`, or `system`.
    pub name: String,
    /// Person or tool.
    pub kind: ActorKind,
    /// What it may do.
    pub access: Access,
}

/// The parts of an app that permissions look at.
#[derive(Debug, Clone, Copy)]
pub struct AppRef<'a> {
    /// The app's name.
    pub name: &'a str,
    /// Its team.
    pub team: Option<&'a str>,
    /// Its owners (user names or e-mail addresses).
    pub owners: &'a [String],
}

impl Principal {
    /// The control plane acting on its own (for bootstrap by the binary and background jobs).
    pub fn system() -> Principal {
        Principal {
            name: "system".into(),
            kind: ActorKind::Tool,
            access: Access::System,
        }
    }

    fn has_scope(&self, scope: Scope) -> bool {
        matches!(&self.access, Access::Token { scopes, .. } if scopes.contains(&scope))
    }

    /// Admin: a person with the admin role, an `admin` token, or the system.
    pub fn is_admin(&self) -> bool {
        match &self.access {
            Access::Person { role, .. } => *role == Role::Admin,
            Access::Token { .. } => self.has_scope(Scope::Admin),
            Access::System => true,
        }
    }

    /// May read every app and the whole audit log.
    pub fn can_read_all(&self) -> bool {
        match &self.access {
            Access::Person { role, .. } => matches!(role, Role::Admin | Role::SecurityReviewer),
            Access::Token { apps, teams, .. } => {
                self.is_admin()
                    || (self.has_scope(Scope::AppsRead) && apps.is_empty() && teams.is_empty())
            }
            Access::System => true,
        }
    }

    /// May read apps at all (the gateway scope alone may not).
    pub fn can_read_apps(&self) -> bool {
        match &self.access {
            Access::Token { .. } => {
                self.is_admin()
                    || self.has_scope(Scope::AppsRead)
                    || self.has_scope(Scope::AppsWrite)
            }
            _ => true,
        }
    }

    /// May read this app.
    pub fn can_read_app(&self, app: AppRef<'_>) -> bool {
        if self.can_read_all() {
            return true;
        }
        match &self.access {
            Access::Person { .. } => self.owns(app),
            Access::Token { .. } => {
                (self.has_scope(Scope::AppsRead) || self.has_scope(Scope::AppsWrite))
                    && self.token_covers(app)
            }
            Access::System => true,
        }
    }

    /// May change this app (apply, roll back, delete).
    pub fn can_write_app(&self, app: AppRef<'_>) -> bool {
        if self.is_admin() {
            return true;
        }
        match &self.access {
            Access::Person { role, .. } => *role == Role::AppOwner && self.owns(app),
            Access::Token { .. } => self.has_scope(Scope::AppsWrite) && self.token_covers(app),
            Access::System => true,
        }
    }

    /// May act as a gateway (fetch snapshots, report status).
    pub fn can_act_as_gateway(&self) -> bool {
        self.is_admin() || self.has_scope(Scope::Gateway)
    }

    /// A person owns an app when it belongs to one of their teams or names them as owner.
    fn owns(&self, app: AppRef<'_>) -> bool {
        let Access::Person { teams, email, .. } = &self.access else {
            return false;
        };
        if let Some(team) = app.team
            && teams.iter().any(|t| t == team)
        {
            return true;
        }
        app.owners.iter().any(|o| {
            o.eq_ignore_ascii_case(&self.name)
                || email.as_deref().is_some_and(|e| o.eq_ignore_ascii_case(e))
        })
    }

    /// Whether a token's app and team restrictions cover an app (no restriction: every app).
    fn token_covers(&self, app: AppRef<'_>) -> bool {
        let Access::Token { apps, teams, .. } = &self.access else {
            return false;
        };
        if apps.is_empty() && teams.is_empty() {
            // Only read tokens may be unrestricted (enforced when tokens are created).
            return true;
        }
        apps.iter().any(|a| a == app.name)
            || app.team.is_some_and(|team| teams.iter().any(|t| t == team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(teams: &[&str]) -> Principal {
        Principal {
            name: "alice".into(),
            kind: ActorKind::Person,
            access: Access::Person {
                user_id: 1,
                role: Role::AppOwner,
                teams: teams.iter().map(|s| s.to_string()).collect(),
                email: Some("alice@example.com".into()),
            },
        }
    }

    #[test]
    fn owners_write_their_teams_apps_only() {
        let p = owner(&["a"]);
        let none: Vec<String> = vec![];
        let mine = AppRef {
            name: "x",
            team: Some("a"),
            owners: &none,
        };
        let theirs = AppRef {
            name: "y",
            team: Some("b"),
            owners: &none,
        };
        assert!(p.can_write_app(mine));
        assert!(!p.can_write_app(theirs));
        assert!(!p.can_read_app(theirs));
        let named = vec!["Alice@example.com".to_string()];
        assert!(p.can_write_app(AppRef {
            name: "z",
            team: Some("b"),
            owners: &named
        }));
    }

    #[test]
    fn read_tokens_cannot_write() {
        let t = Principal {
            name: "token:ci".into(),
            kind: ActorKind::Tool,
            access: Access::Token {
                token_id: 1,
                scopes: vec![Scope::AppsRead],
                apps: vec![],
                teams: vec![],
            },
        };
        let none: Vec<String> = vec![];
        let app = AppRef {
            name: "x",
            team: None,
            owners: &none,
        };
        assert!(t.can_read_app(app));
        assert!(!t.can_write_app(app));
        assert!(!t.can_act_as_gateway());
    }
}
