//! Identity building blocks of Paved's `authn` and `authz` filters, in pure Rust: no
//! Proxy-Wasm, no C, the same code natively (tests) and in the wasm32-wasip1 plugins.
//!
//! - Keys and tokens: [`jwk`] (JWKS parsing, key choice by `kid`, rotation signal), [`alg`]
//!   (RS256, ES256, EdDSA; never `none` or HMAC), [`jwt`] (verification and signing),
//!   [`claims`] (issuer, audience, validity window with bounded skew).
//! - OpenID Connect: [`discovery`], [`pkce`] (S256), [`login`] (`state`, `nonce`, verifier in
//!   a sealed cookie), [`replay`] (single-use `state`), [`provider`] (discovery and JWKS
//!   cache with refresh and backoff).
//! - Browser sessions: [`seal`] (XChaCha20-Poly1305 sealed values), [`session`], [`cookie`],
//!   [`redirect`] (no open redirects).
//! - What upstreams and other filters see: [`identity`] (properties and headers),
//!   [`assertion`] (the signed identity assertion and its JWKS).
//! - The filters' decisions: [`authn`] (the whole authentication flow as a pure state
//!   machine), [`policy`] (authorization), [`waitlist`] (requests paused for the provider).
//! - Plumbing: [`b64`], [`url`], [`random`].

pub mod alg;
pub mod assertion;
pub mod authn;
pub mod b64;
pub mod claims;
pub mod cookie;
pub mod discovery;
pub mod identity;
pub mod jwk;
pub mod jwt;
pub mod login;
pub mod pkce;
pub mod policy;
pub mod provider;
pub mod random;
pub mod redirect;
pub mod replay;
pub mod seal;
pub mod session;
pub mod url;
pub mod waitlist;

#[cfg(test)]
mod testkeys;

pub use alg::Algorithm;
pub use identity::Identity;
pub use jwk::KeySet;
pub use random::OsRng;
