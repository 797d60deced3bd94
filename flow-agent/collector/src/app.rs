//! Application identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest app id, in bytes.
const MAX_LEN: usize = 128;

/// The id of an app, as in its intent file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

/// Why a string is not an [`AppId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppIdError {
    /// Empty.
    #[error("app id is empty")]
    Empty,
    /// Longer than 128 bytes.
    #[error("app id is {0} bytes long, more than 128")]
    TooLong(usize),
    /// Contains whitespace or a control character.
    #[error("app id contains whitespace or a control character")]
    BadCharacter,
}

impl AppId {
    /// Checks and wraps an id.
    pub fn new(id: impl Into<String>) -> Result<Self, AppIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(AppIdError::Empty);
        }
        if id.len() > MAX_LEN {
            return Err(AppIdError::TooLong(id.len()));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AppIdError::BadCharacter);
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppId {
    type Error = AppIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AppId> for String {
    fn from(id: AppId) -> Self {
        id.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
