//! What a device reads from a gateway during login (`proto::auth`'s client
//! half) over arbitrary bytes: a gateway auth document. Nothing may panic,
//! and when it holds a form, the device's answer to it must be a document
//! the gateway's half reads (the device never writes broken XML, whatever
//! names and opaque state the gateway sent).
#![no_main]

use proto::auth::{auth_reply_xml, parse_client_auth, parse_server_auth, AuthXmlError};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(auth) = parse_server_auth(data) else { return };
    let Some(form) = auth.form else { return };
    let answers: Vec<(&str, &str)> = form.inputs.iter().map(|i| (i.name.as_str(), "answer")).collect();
    let reply = auth_reply_xml(&answers, auth.opaque.as_deref());
    match parse_client_auth(reply.as_bytes()) {
        Ok(_) | Err(AuthXmlError::DuplicateField | AuthXmlError::TooManyAnswers) => {}
        Err(e) => panic!("the device wrote a reply the gateway cannot read: {e}"),
    }
});
