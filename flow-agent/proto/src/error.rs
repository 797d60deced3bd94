//! Why a batch or an agent id was refused.

/// Why bytes are not an acceptable [`crate::FlowBatch`].
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Larger than [`crate::MAX_BATCH_BYTES`]; not even parsed.
    #[error("batch is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape (the message says where).
    #[error("batch is not valid JSON for the flow batch format: {0}")]
    Json(#[source] serde_json::Error),
    /// A format version this build does not read.
    #[error("batch format version {found} is not supported (supported: {supported:?})")]
    UnsupportedVersion {
        /// The version in the batch.
        found: u32,
        /// The versions this build reads.
        supported: &'static [u32],
    },
    /// A field breaks a rule of the format.
    #[error("batch field `{path}`: {problem}")]
    Invalid {
        /// Where, e.g. `flows[3].rtt.buckets[2]`.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl BatchError {
    pub(crate) fn invalid(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Why a string is not an [`crate::AgentId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentIdError {
    /// Empty.
    #[error("agent id is empty")]
    Empty,
    /// Longer than [`crate::MAX_AGENT_ID_LEN`].
    #[error("agent id is {len} bytes long, more than {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside `[A-Za-z0-9_-]` (it becomes a NATS subject token, where `.`,
    /// `*`, `>` and whitespace have meanings).
    #[error("agent id contains {found:?}; only ASCII letters, digits, `-` and `_` are allowed")]
    BadCharacter {
        /// The first offending character.
        found: char,
    },
}
