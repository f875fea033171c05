//! The SMS gateway pages' body templates (`docs/sms/*.md`), evaluated against the `ctx` of a
//! real queued message, so a page cannot drift from what the courier sends: each must
//! produce the gateway's fields with the number and the code in the gateway's format.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use tessera_courier::templates::{Lang, TemplateType, kratos_template_data, render_sms};
use tessera_store::courier::MessageRow;

/// The one ```jsonnet block of a docs page.
fn jsonnet_of(page: &str) -> String {
    let path = format!("{}/../../docs/sms/{page}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = text
        .find("```jsonnet\n")
        .unwrap_or_else(|| panic!("no jsonnet in {page}"))
        + 11;
    let end = text[start..].find("```").expect("closed block") + start;
    text[start..end].to_string()
}

/// The message the courier would queue for a verification code to `to` in `lang`.
fn message(to: &str, lang: Lang, t: TemplateType) -> MessageRow {
    let data = json!({"To": to, "VerificationCode": "493027", "RecoveryCode": "493027", "ExpiresInMinutes": 15});
    MessageRow {
        id: "m".into(),
        status: "queued".into(),
        kind: "phone".into(),
        channel: "sms".into(),
        recipient: to.into(),
        subject: String::new(),
        body: render_sms(t, lang, &data, &BTreeMap::new()).expect("an SMS template"),
        html_body: String::new(),
        template_type: t.as_str().into(),
        send_count: 0,
        next_attempt_at: 0,
        created_at: 0,
        updated_at: 0,
        template_data: kratos_template_data(&data).to_string(),
    }
}

/// Evaluates a page's template as the courier does (a function of `ctx`).
fn eval(page: &str, m: &MessageRow) -> Value {
    let source = format!(
        "local t = ({}\n); t(std.extVar('claims'))",
        jsonnet_of(page)
    );
    let mapper = tessera_mapper::Mapper::compile(page, &source)
        .unwrap_or_else(|e| panic!("{page} does not parse: {e}"));
    tessera_mapper::evaluate_in_process(&mapper, &tessera_courier::http::ctx(m))
        .unwrap_or_else(|e| panic!("{page} fails: {e}"))
}

#[test]
fn twilio_gets_e164_and_the_rendered_text() {
    let m = message(
        "+8613800138000",
        Lang::Zh,
        TemplateType::VerificationCodeValid,
    );
    let out = eval("twilio.md", &m);
    assert_eq!(out["To"], "+8613800138000");
    assert!(out["From"].as_str().is_some_and(|f| f.starts_with('+')));
    assert_eq!(out["Body"], m.body.as_str());
    assert!(
        m.body.contains("493027") && m.body.contains("验证码"),
        "{}",
        m.body
    );
    assert_eq!(out.as_object().map(|o| o.len()), Some(3), "{out}");
}

#[test]
fn smsru_gets_digits_without_plus_and_the_russian_text() {
    let m = message("+79123456789", Lang::Ru, TemplateType::RecoveryCodeValid);
    let out = eval("smsru.md", &m);
    assert_eq!(
        out,
        json!({"to": "79123456789", "msg": "Код восстановления доступа: 493027. Действует 15 мин.", "json": "1"})
    );
}

#[test]
fn aliyun_gets_a_mainland_number_without_86_and_the_code_alone() {
    let m = message(
        "+8613800138000",
        Lang::Zh,
        TemplateType::VerificationCodeValid,
    );
    let out = eval("aliyun.md", &m);
    assert_eq!(out["PhoneNumbers"], "13800138000");
    assert!(
        out["TemplateCode"]
            .as_str()
            .is_some_and(|c| c.starts_with("SMS_")),
        "{out}"
    );
    assert!(out["SignName"].as_str().is_some_and(|s| !s.is_empty()));
    let param: Value = serde_json::from_str(out["TemplateParam"].as_str().expect("a string"))
        .expect("TemplateParam is JSON text");
    assert_eq!(param, json!({"code": "493027"}));
    // Another country keeps its code, without '+'.
    let m = message("+79123456789", Lang::Ru, TemplateType::RecoveryCodeValid);
    assert_eq!(eval("aliyun.md", &m)["PhoneNumbers"], "79123456789");
}

#[test]
fn tencent_gets_e164_and_the_code_with_its_lifetime() {
    let m = message("+8613800138000", Lang::Zh, TemplateType::RecoveryCodeValid);
    let out = eval("tencent.md", &m);
    assert_eq!(out["PhoneNumberSet"], json!(["+8613800138000"]));
    assert_eq!(out["TemplateParamSet"], json!(["493027", "15"]));
    assert_eq!(out["TemplateId"], "1000002");
    assert!(
        out["SmsSdkAppId"]
            .as_str()
            .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()))
    );
}

#[test]
fn a_template_for_a_message_type_it_does_not_know_fails_rather_than_sending_garbage() {
    // The provider pages map template types to approved templates; an unmapped type must be
    // an evaluation error (the courier records it and retries), never a body without a code.
    let mut m = message(
        "+8613800138000",
        Lang::Zh,
        TemplateType::VerificationCodeValid,
    );
    m.template_type = "login_code_valid".into();
    let source = format!(
        "local t = ({}\n); t(std.extVar('claims'))",
        jsonnet_of("aliyun.md")
    );
    let mapper = tessera_mapper::Mapper::compile("aliyun.md", &source).expect("parses");
    assert!(tessera_mapper::evaluate_in_process(&mapper, &tessera_courier::http::ctx(&m)).is_err());
}
