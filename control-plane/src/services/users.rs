//! Users (people) with their roles and teams: local users of the built-in OpenID provider,
//! and people of an external provider, created and updated at each sign-in.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{ControlPlane, audit};
use crate::auth::{Access, ActorKind, Principal, Role};
use crate::secrets::{burn_password_time, hash_password, sha256_hex, verify_password};
use crate::storage::entities::{external_identity, user};
use crate::storage::strings_json;
use crate::{Error, Result};

/// A user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login name: 1 to 64 of letters, digits, `.`, `-`, `_`, `@`.
    pub username: String,
    /// Password (at least 8 characters).
    pub password: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Role.
    pub role: Role,
    /// Teams.
    pub teams: Vec<String>,
    /// Groups (the `groups` claim, matched by app populations).
    pub groups: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("teams", &self.teams)
            .finish_non_exhaustive()
    }
}

/// The `password_hash` of people of an external provider: not a PHC string, so no password
/// ever verifies against it (they cannot sign in at the built-in provider).
const NO_PASSWORD: &str = "!external";

/// A person as an external OpenID provider describes them, once their ID token verified, and
/// what the group mapping makes of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPerson {
    /// The provider's issuer.
    pub issuer: String,
    /// Their `sub` there.
    pub subject: String,
    /// The user name they would like (`preferred_username`, else `email`, else `sub`).
    pub preferred_username: String,
    /// Their verified e-mail address.
    pub email: Option<String>,
    /// Their display name.
    pub display_name: Option<String>,
    /// Their groups at the provider (kept for the `groups` claim).
    pub groups: Vec<String>,
    /// The role the mapping gives them.
    pub role: Role,
    /// The teams the mapping gives them.
    pub teams: Vec<String>,
    /// Whether an account may be created when they have none yet.
    pub may_create: bool,
}

/// What a new account is told about its person, wherever it comes from (an admin or an
/// external provider).
struct Profile<'a> {
    email: &'a Option<String>,
    display_name: &'a Option<String>,
    role: Role,
    teams: &'a [String],
    groups: &'a [String],
}

impl Profile<'_> {
    /// The row of a new, enabled account created at `now`.
    fn new_row(
        &self,
        username: String,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> user::ActiveModel {
        user::ActiveModel {
            username: Set(username),
            email: Set(self.email.clone()),
            display_name: Set(self.display_name.clone()),
            password_hash: Set(password_hash),
            role: Set(self.role.as_str().to_string()),
            teams: Set(strings_json(self.teams)),
            groups: Set(strings_json(self.groups)),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
    }
}

/// A user name made of the allowed characters of `wanted`, at most 48 of them.
fn username_base(wanted: &str) -> String {
    let base: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
        .take(48)
        .collect();
    if base.is_empty() { "user".into() } else { base }
}

fn user_json(u: &user::Model) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "displayName": u.display_name,
        "role": u.role,
        "teams": u.teams,
        "groups": u.groups,
        "disabled": u.disabled,
    })
}

impl ControlPlane {
    /// Creates a local user (admins only; the binary bootstraps the first admin with
    /// [`Principal::system`]).
    pub async fn create_user(&self, who: &Principal, new: NewUser) -> Result<user::Model> {
        if !who.is_admin() {
            return Err(Error::Forbidden("only admins create users".into()));
        }
        let valid_name = !new.username.is_empty()
            && new.username.len() <= 64
            && new
                .username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
        if !valid_name {
            return Err(Error::BadRequest(
                "a user name is 1 to 64 letters, digits, `.`, `-`, `_` or `@`".into(),
            ));
        }
        if new.password.chars().count() < 8 || new.password.len() > 1024 {
            return Err(Error::BadRequest(
                "a password has 8 to 1024 characters".into(),
            ));
        }
        let password_hash = hash_password(&new.password)?;
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let exists = user::Entity::find()
            .filter(user::Column::Username.eq(new.username.as_str()))
            .one(&tx)
            .await?;
        if exists.is_some() {
            return Err(Error::Conflict(format!(
                "user `{}` already exists",
                new.username
            )));
        }
        let now = Utc::now();
        let u = Profile {
            email: &new.email,
            display_name: &new.display_name,
            role: new.role,
            teams: &new.teams,
            groups: &new.groups,
        }
        .new_row(new.username.clone(), password_hash, now)
        .insert(&tx)
        .await?;
        audit(
            &tx,
            who,
            "user.create",
            "user",
            &u.username,
            None,
            None,
            Some(user_json(&u)),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user = %u.username, role = %u.role, actor = %who.name, "user created");
        Ok(u)
    }

    /// The user an external provider's person is, created or brought up to date from what the
    /// provider says now (role and teams follow the provider's groups at every sign-in).
    /// Refused: a disabled user, and a person with no account when `may_create` is false.
    pub async fn sign_in_external(&self, person: ExternalPerson) -> Result<user::Model> {
        // The audit log names the provider as the actor of what a sign-in changes.
        let actor = Principal {
            name: format!(
                "oidc:{}",
                person.issuer.chars().take(200).collect::<String>()
            ),
            ..Principal::system()
        };
        let now = Utc::now();
        let _guard = self.write_guard().await;
        let tx = self.store().begin_write().await?;
        let link = external_identity::Entity::find()
            .filter(external_identity::Column::Issuer.eq(person.issuer.as_str()))
            .filter(external_identity::Column::Subject.eq(person.subject.as_str()))
            .one(&tx)
            .await?;
        let existing = match &link {
            Some(l) => user::Entity::find_by_id(l.user_id).one(&tx).await?,
            None => None,
        };
        let u = match (link, existing) {
            (Some(link), Some(u)) => {
                if u.disabled {
                    return Err(Error::Unauthenticated("this account is disabled".into()));
                }
                let before = user_json(&u);
                let mut active: user::ActiveModel = u.clone().into();
                active.email = Set(person.email.clone());
                active.display_name = Set(person.display_name.clone());
                active.role = Set(person.role.as_str().to_string());
                active.teams = Set(strings_json(&person.teams));
                active.groups = Set(strings_json(&person.groups));
                let changed = u.email != person.email
                    || u.display_name != person.display_name
                    || u.role != person.role.as_str()
                    || u.team_list() != person.teams
                    || u.group_list() != person.groups;
                let u = if changed {
                    active.updated_at = Set(now);
                    let u = active.update(&tx).await?;
                    audit(
                        &tx,
                        &actor,
                        "user.update",
                        "user",
                        &u.username,
                        None,
                        Some(before),
                        Some(user_json(&u)),
                    )
                    .await?;
                    u
                } else {
                    u
                };
                let mut link: external_identity::ActiveModel = link.into();
                link.last_sign_in_at = Set(now);
                link.update(&tx).await?;
                u
            }
            (Some(_), None) => {
                // The user was deleted: the person is not known any more.
                return Err(Error::Unauthenticated("this account was removed".into()));
            }
            (None, _) => {
                if !person.may_create {
                    return Err(Error::Forbidden(
                        "you have no account here and no group of yours is mapped to one".into(),
                    ));
                }
                // A local user, or another provider's person, may hold the name already: the
                // newcomer gets a suffix derived from who they are, never that account.
                let base = username_base(&person.preferred_username);
                let digest =
                    sha256_hex(format!("{}\n{}", person.issuer, person.subject).as_bytes());
                let mut username = None;
                for candidate in [base.clone(), format!("{base}-{}", &digest[..8])] {
                    let taken = user::Entity::find()
                        .filter(user::Column::Username.eq(candidate.as_str()))
                        .one(&tx)
                        .await?
                        .is_some();
                    if !taken {
                        username = Some(candidate);
                        break;
                    }
                }
                let username = username
                    .ok_or_else(|| Error::Conflict(format!("no free user name for `{base}`")))?;
                let u = Profile {
                    email: &person.email,
                    display_name: &person.display_name,
                    role: person.role,
                    teams: &person.teams,
                    groups: &person.groups,
                }
                .new_row(username, NO_PASSWORD.into(), now)
                .insert(&tx)
                .await?;
                external_identity::ActiveModel {
                    issuer: Set(person.issuer.clone()),
                    subject: Set(person.subject.clone()),
                    user_id: Set(u.id),
                    created_at: Set(now),
                    last_sign_in_at: Set(now),
                    ..Default::default()
                }
                .insert(&tx)
                .await?;
                audit(
                    &tx,
                    &actor,
                    "user.create",
                    "user",
                    &u.username,
                    None,
                    None,
                    Some(user_json(&u)),
                )
                .await?;
                tracing::info!(user = %u.username, role = %u.role, issuer = %person.issuer, "user created at first sign-in");
                u
            }
        };
        tx.commit().await?;
        Ok(u)
    }

    /// The user with this id.
    pub async fn find_user(&self, id: i64) -> Result<Option<user::Model>> {
        Ok(user::Entity::find_by_id(id).one(self.store().db()).await?)
    }

    /// The user with these credentials, if they are right and the user is enabled. Takes the
    /// same time whether or not the user exists.
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<user::Model>> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(self.store().db())
            .await?;
        let password = password.to_string();
        // argon2 is slow on purpose: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || match found {
            Some(u) if verify_password(&password, &u.password_hash) && !u.disabled => Some(u),
            Some(_) => None,
            None => {
                burn_password_time(&password);
                None
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("password check: {e}")))?;
        if result.is_none() {
            tracing::info!(user = %username, "failed sign-in");
        }
        Ok(result)
    }

    /// The principal of a signed-in user (roles and teams are read fresh at every request).
    pub fn principal_for_user(&self, u: &user::Model) -> Result<Principal> {
        Ok(Principal {
            name: u.username.clone(),
            kind: ActorKind::Person,
            access: Access::Person {
                user_id: u.id,
                role: u.role.parse()?,
                teams: u.team_list(),
                email: u.email.clone(),
            },
        })
    }
}
