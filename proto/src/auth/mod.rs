//! The XML auth documents (protocol reference §2.3–§2.6), both directions,
//! on the one XML reader and escaper of `xml.rs`:
//!
//! - the gateway's half ([`parse_client_auth`], [`auth_request_xml`],
//!   [`auth_success_xml`], [`auth_failure_xml`]) reads the client's `init`
//!   and `auth-reply` POST bodies and writes the forms and verdicts;
//! - the device's half ([`init_xml`], [`auth_reply_xml`],
//!   [`parse_server_auth`]) writes `init` and `auth-reply` as openconnect
//!   9.01 does and reads the gateway's forms and `success` document.
//!
//! What goes on the wire follows what openconnect's `auth.c` looks for, not
//! a schema: an `<auth>` element with an `id` (`success` or a form), a
//! `<form>` with `method="post"` and an `action`, `<input>`s with a `type`
//! and a `name`, an optional `group_list` select (§2.4). Each half's tests
//! read the other half's output, so the two cannot drift apart.

mod client;
mod server;

pub use crate::xml::XmlError;
pub use client::{
    auth_reply_xml, init_xml, parse_server_auth, FormInput, InputKind, ServerAuth, ServerAuthError, ServerForm,
};
pub use server::{
    auth_failure_xml, auth_request_xml, auth_success_xml, parse_auth_answers, parse_client_auth, AuthAnswer,
    AuthDocType, AuthForm, AuthXmlError, ClientAuth, FieldKind, FormField, MAX_ANSWERS, MAX_OPAQUE, MAX_VALUE,
};

/// Largest document parsed, either way, equal to the HTTP layer's default
/// body limit; observed documents are under 400 bytes (Appendix A.1).
pub const MAX_DOCUMENT: usize = 64 * 1024;
