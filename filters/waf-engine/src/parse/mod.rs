//! Splitting a request into named values: query and form arguments, cookies, JSON fields,
//! multipart parts. Every parser is lenient and bounded: malformed or truncated input yields
//! what could be read, never an error, so a malformed body cannot skip inspection.

pub mod cookies;
pub mod json;
pub mod multipart;
pub mod urlencoded;
