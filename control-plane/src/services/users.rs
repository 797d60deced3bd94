//! Local users (people) of the built-in OpenID provider, with their roles and teams.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{ControlPlane, audit};
use crate::auth::{Access, ActorKind, Principal, Role};
use crate::secrets::{burn_password_time, hash_password, verify_password};
use crate::storage::entities::user;
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
        let u = user::ActiveModel {
            username: Set(new.username.clone()),
            email: Set(new.email.clone()),
            display_name: Set(new.display_name.clone()),
            password_hash: Set(password_hash),
            role: Set(new.role.as_str().to_string()),
            teams: Set(strings_json(&new.teams)),
            groups: Set(strings_json(&new.groups)),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
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
