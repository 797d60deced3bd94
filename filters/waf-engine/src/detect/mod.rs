//! The detectors, one attack family each. A detector looks at one normalised value and
//! pushes the IDs of the rules it matched; which values go to which detector is the
//! engine's business.

pub mod lfi;
pub mod protocol;
pub mod rce;
pub mod rfi;
pub mod scanner;
pub mod sqli;
pub mod text;
pub mod xss;

use crate::normalize::Normalized;
use crate::request::Location;
use crate::rule::RuleId;

/// One value to inspect.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    /// Where it was found.
    pub location: Location,
    /// The lowercase name it was found under (argument, cookie or header name).
    pub name: &'a str,
    /// Its views.
    pub norm: &'a Normalized,
}

/// Rule IDs matched so far.
pub type Hits = Vec<RuleId>;
