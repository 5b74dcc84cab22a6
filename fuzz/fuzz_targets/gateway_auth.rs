//! The gateway's half of the auth XML (`proto::auth::parse_client_auth`,
//! `parse_auth_answers`) over arbitrary bytes: a device's `init` or
//! `auth-reply` body. The device's half is `client_auth`.
//!
//! Both readers accept and refuse the same documents and agree on the
//! answers; every value is within its bound. The gateway's next form, asking
//! again for the answers it read (labelled with their values), must be a
//! document the device reads back with the same names and labels.
#![no_main]

use proto::auth::{
    auth_request_xml, parse_auth_answers, parse_client_auth, parse_server_auth, AuthForm, FieldKind, FormField,
    MAX_ANSWERS, MAX_DOCUMENT, MAX_OPAQUE, MAX_VALUE,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (auth, answers) = match (parse_client_auth(data), parse_auth_answers(data)) {
        (Ok(auth), Ok(answers)) => (auth, answers),
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            return;
        }
        (a, b) => panic!("the two readers disagree: {:?} / {:?}", a.map(|_| ()), b.map(|_| ())),
    };
    assert!(answers.len() <= MAX_ANSWERS);
    for (i, a) in answers.iter().enumerate() {
        assert!(a.value.len() <= MAX_VALUE);
        assert!(answers[..i].iter().all(|b| b.name != a.name), "answer {} twice", a.name);
    }
    let answer = |name: &str| answers.iter().find(|a| a.name == name).map(|a| a.value.as_str());
    assert_eq!(auth.username.as_deref(), answer("username"));
    assert_eq!(auth.password.as_ref().map(|p| p.as_str()), answer("password"));
    assert!(auth.opaque.as_ref().is_none_or(|o| o.len() <= MAX_OPAQUE));
    for v in [&auth.group_select, &auth.group_access, &auth.device_id, &auth.client_version].into_iter().flatten() {
        assert!(v.len() <= MAX_VALUE);
    }

    let form = AuthForm {
        message: auth.device_id.clone().unwrap_or_default(),
        error: auth.client_version.clone(),
        action: auth.group_access.clone().unwrap_or_default(),
        fields: answers
            .iter()
            .map(|a| FormField { kind: FieldKind::Text, name: a.name.clone(), label: a.value.to_string(), value: None })
            .collect(),
        groups: auth.group_select.iter().cloned().collect(),
    };
    let xml = auth_request_xml(&form);
    if xml.len() > MAX_DOCUMENT {
        return;
    }
    let back = parse_server_auth(xml.as_bytes()).expect("the device reads the gateway's form");
    let inputs = back.form.expect("a form").inputs;
    assert_eq!(inputs.len(), answers.len());
    for (input, a) in inputs.iter().zip(&answers) {
        assert_eq!((input.name.as_str(), input.label.as_str()), (a.name.as_str(), a.value.as_str()));
    }
});
