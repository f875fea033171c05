//! Rendering tests: every template renders, in every language, with labels, errors, CSRF
//! tokens and no inline script or style.

use super::*;
use crate::ui::i18n::{self, Lang};
use serde_json::Value;
use serde_json::json;
use tessera_config::Experience;
use tessera_core::flow::{Flow, FlowKind};
use tessera_core::text;
use tessera_core::ui::Node;
use tessera_core::ui::Ui;

fn experience() -> Experience {
    Experience {
        terms_url: Some(url::Url::parse("https://example.com/terms").unwrap()),
        privacy_url: Some(url::Url::parse("https://example.com/privacy?a=1&b=2").unwrap()),
        provider_order: vec!["vk".into(), "github".into()],
        ..Experience::default()
    }
}

fn chrome(lang: Lang) -> Chrome {
    Chrome::new(
        lang,
        &experience(),
        "/ui/login?flow=x&ui_locales=ru",
        "/a.css",
        "/t.css",
    )
}

fn registration_flow() -> Flow {
    let mut ui = Ui::new("http://127.0.0.1/self-service/registration?flow=1".into());
    ui.nodes.push(Node::csrf("tok<en>"));
    ui.nodes.push(
        Node::input("password", "traits.email", "email", json!("a@example.com"))
            .required()
            .label(text::label_generated("E-Mail", "traits.email")),
    );
    ui.nodes.push(
        Node::input("password", "traits.plan", "text", Value::Null)
            .label(text::label_generated("Plan", "traits.plan")),
    );
    let mut pw = Node::input("password", "password", "password", Value::Null)
        .required()
        .label(text::label_password());
    pw.messages.push(text::password_policy(
        "password length must be at least 8 characters but only got 3.",
    ));
    ui.nodes.push(pw);
    ui.nodes.push(
        Node::input("password", "method", "submit", json!("password"))
            .label(text::registration_title()),
    );
    for p in ["github", "vk"] {
        ui.nodes.push(
            Node::input("oidc", "provider", "submit", json!(p))
                .label(text::registration_with(p, p)),
        );
    }
    let mut agree = Node::input("default", "terms_accepted", "checkbox", json!(false))
        .required()
        .label(text::label_agreement(None, None));
    agree.messages.push(text::agreement_required());
    ui.nodes.push(agree);
    ui.messages.push(text::duplicate_credentials());
    flow_of(FlowKind::Registration, ui)
}

fn flow_of(kind: FlowKind, ui: Ui) -> Flow {
    Flow {
        id: uuid::Uuid::nil(),
        flow_type: tessera_core::flow::FlowType::Browser,
        kind,
        expires_at: 0,
        issued_at: 0,
        request_url: String::new(),
        return_to: None,
        ui,
        state: tessera_core::flow::FlowState::ChooseMethod,
        refresh: None,
        requested_aal: None,
        identity: Value::Null,
        created_at: 0,
        updated_at: 0,
        csrf_token: String::new(),
        identity_id: None,
        internal: Default::default(),
        session_token_exchange_code: None,
        active: None,
        continue_with: Vec::new(),
    }
}

fn page(lang: Lang, x: &Experience) -> String {
    let flow = registration_flow();
    let types = |id: &str| tessera_social::types::get(id);
    let enums = |name: &str| {
        if name == "traits.plan" {
            vec![json!("free"), json!("pro")]
        } else {
            vec![]
        }
    };
    let cx = FlowContext {
        lang,
        experience: x,
        provider_type: &types,
        enum_of: &enums,
        identifier_is_email: true,
        code_via: None,
    };
    let view = FlowPage {
        chrome: chrome(lang),
        page: "registration",
        title: "T".into(),
        subtitle: "S".into(),
        messages: flow
            .ui
            .messages
            .iter()
            .map(|m| message_view(lang, m, false))
            .collect(),
        forms: flow_forms(&flow, &cx),
        notice_html: String::new(),
        switch_href: "/self-service/login/browser".into(),
        logout_href: String::new(),
        home_href: String::new(),
        signed_in_as: String::new(),
        recovery_href: String::new(),
    };
    render("registration.html", &view).unwrap()
}

#[test]
fn registration_page_ties_labels_errors_and_csrf_to_every_form() {
    let html = page(Lang::En, &experience());
    assert!(
        html.starts_with("<!doctype html>\n<html lang=\"en\">"),
        "{html}"
    );
    // One combined form (the agreement covers social and password sign-up) with the CSRF
    // token, escaped.
    assert_eq!(html.matches("<form ").count(), 1, "{html}");
    assert_eq!(
        html.matches("name=\"csrf_token\" value=\"tok&lt;en&gt;\"")
            .count(),
        1
    );
    // Every input has its label; errors sit next to their field and are linked to it.
    for id in ["f-password-traits-email", "f-password-password"] {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("aria-describedby=\"f-password-password-err\""));
    assert!(html.contains("The password must be at least 8 characters long."));
    assert!(html.contains("role=\"alert\" data-id=\"4000007\""));
    // The schema's enum becomes a select; the label says which fields are optional.
    assert!(
        html.contains("<select id=\"f-password-traits-plan\""),
        "{html}"
    );
    assert!(html.contains("<option value=\"pro\">pro</option>"));
    assert!(html.contains("(optional)"));
    // The agreement: one real checkbox with links, before the social buttons, with its error.
    assert_eq!(html.matches("name=\"terms_accepted\"").count(), 1);
    assert!(html.find("name=\"terms_accepted\"") < html.find("value=\"vk\""));
    assert!(html.contains("href=\"https://example.com/privacy?a=1&amp;b=2\""));
    assert!(html.contains("Accept the terms to continue."));
    // Provider order from the experience: VK before GitHub; icons inline.
    let (vk, gh) = (
        html.find("value=\"vk\"").unwrap(),
        html.find("value=\"github\"").unwrap(),
    );
    assert!(vk < gh);
    assert!(html.contains("<svg"));
    // No inline script or style anywhere.
    assert!(!html.contains("<script") && !html.contains("style=") && !html.contains("<style"));
    // The switcher drops ui_locales so the chosen language sticks.
    assert!(
        html.contains("/ui/lang?set=ru&amp;back=%2Fui%2Flogin%3Fflow%3Dx\""),
        "{html}"
    );
}

#[test]
fn social_buttons_take_icon_and_local_name_from_the_provider_type() {
    let mut ui = Ui::new("http://127.0.0.1/self-service/login?flow=1".into());
    ui.nodes.push(Node::csrf("t"));
    for (id, label) in [("dt", "DingTalk"), ("gh", "github"), ("gone", "Gone")] {
        ui.nodes.push(
            Node::input("oidc", "provider", "submit", json!(id))
                .label(text::registration_with(label, id)),
        );
    }
    let flow = flow_of(FlowKind::Login, ui);
    let types = |id: &str| match id {
        "dt" => tessera_social::types::get("dingtalk"),
        "gh" => tessera_social::types::get("github"),
        _ => None,
    };
    let enums = |_: &str| vec![];
    let x = experience();
    let buttons = |lang| {
        let cx = FlowContext {
            lang,
            experience: &x,
            provider_type: &types,
            enum_of: &enums,
            identifier_is_email: false,
            code_via: None,
        };
        let mut forms = flow_forms(&flow, &cx);
        assert_eq!(forms.len(), 1);
        forms.remove(0).buttons
    };
    let dingtalk = tessera_social::types::get("dingtalk").map(|t| t.icon.trim());
    let zh = buttons(Lang::ZhCn);
    let by = |id: &str| zh.iter().find(|b| b.value == id).unwrap();
    assert_eq!(by("dt").provider_name, "钉钉");
    assert!(by("dt").label.contains("钉钉"), "{}", by("dt").label);
    assert_eq!(Some(by("dt").icon.as_str()), dingtalk);
    assert_eq!(by("dt").provider, "dingtalk");
    // A type without local names keeps the configured label as written.
    assert_eq!(by("gh").provider_name, "github");
    assert!(by("gh").icon.contains("<svg") && Some(by("gh").icon.as_str()) != dingtalk);
    // A provider no longer configured: the default icon and no type.
    assert_eq!(by("gone").icon, tessera_social::types::DEFAULT_ICON.trim());
    assert_eq!(by("gone").provider, "");
    let en = buttons(Lang::En);
    assert_eq!(en[0].provider_name, "DingTalk");
}

#[test]
fn social_only_hides_password_fields() {
    let x = Experience {
        show_password: false,
        ..experience()
    };
    let html = page(Lang::Ru, &x);
    assert!(!html.contains("type=\"password\""), "{html}");
    assert!(!html.contains("traits.email"));
    assert!(html.contains("Продолжить через vk"));
}

#[test]
fn pages_render_in_every_language_without_english_leftovers() {
    for lang in [Lang::ZhCn, Lang::Ru] {
        let html = page(lang, &experience());
        assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())));
        for english in [
            "Password",
            "(optional)",
            "Accept the terms",
            "Sign up",
            "already exists",
        ] {
            assert!(
                !html.contains(english),
                "{}: `{english}` in\n{html}",
                lang.tag()
            );
        }
    }
    let ru = page(Lang::Ru, &experience());
    assert!(
        ru.contains("Пароль должен содержать не менее 8 символов."),
        "{ru}"
    );
    let zh = page(Lang::ZhCn, &experience());
    assert!(zh.contains("《服务条款》"), "{zh}");
}

#[test]
fn consent_page_posts_the_op_fields_in_every_language() {
    for (lang, allow, deny) in [
        (Lang::En, "Allow", "Cancel"),
        (Lang::ZhCn, "授权", "取消"),
        (Lang::Ru, "Разрешить", "Отмена"),
    ] {
        let html = render_consent(
            chrome(lang),
            ConsentView {
                app_name: "Bookstore <WordPress>".into(),
                scopes: vec!["openid".into(), "email".into(), "custom:read".into()],
                user_identifier: "li.na@example.com".into(),
                form_action: "/ui/consent".into(),
                csrf_token: "c5rf".into(),
                request: "req-1".into(),
            },
        )
        .unwrap();
        let tag = lang.tag();
        assert!(html.contains(&format!("<html lang=\"{tag}\">")), "{html}");
        assert!(html.contains("Bookstore &lt;WordPress&gt;"), "{html}");
        assert_eq!(html.matches("<form ").count(), 1, "{html}");
        assert!(html.contains("name=\"csrf_token\" value=\"c5rf\""));
        assert!(html.contains("name=\"request\" value=\"req-1\""), "{html}");
        assert!(!html.contains("request_id"), "{html}");
        assert!(html.contains(&format!("name=\"decision\" value=\"accept\">{allow}<")));
        assert!(html.contains(&format!("name=\"decision\" value=\"deny\">{deny}<")));
        assert!(html.contains(&i18n::t(lang, "consent.scope.email", &[])));
        assert!(html.contains("custom:read"));
        assert!(html.contains("li.na@example.com"));
        assert!(!html.contains("<script") && !html.contains("style="));
    }
}

fn op_error(reason: &str, error: &str) -> OpErrorView {
    OpErrorView {
        status: 403,
        error: error.into(),
        reason: reason.into(),
        app_name: Some("Учёт <склада>".into()),
        description: "You cannot sign in to “Учёт”: no DingTalk link.".into(),
        back_href: Some("https://app.example/cb?error=access_denied&state=s".into()),
        back_form: None,
    }
}

#[test]
fn op_error_page_explains_in_the_page_language_and_keeps_the_detail_in_english() {
    let html = render_op_error(chrome(Lang::Ru), op_error("no_subject", "access_denied")).unwrap();
    assert!(html.contains("<html lang=\"ru\">"), "{html}");
    assert!(html.contains(&format!(
        "<h1>{}</h1>",
        i18n::t(Lang::Ru, "op_error.no_subject.title", &[])
    )));
    assert!(html.contains("Приложение: Учёт &lt;склада&gt;"), "{html}");
    assert!(
        html.contains("<span lang=\"en\">You cannot sign in to “Учёт”: no DingTalk link.</span>")
    );
    assert!(html.contains("Код ошибки: access_denied"));
    assert!(html.contains(
        "href=\"https://app.example/cb?error=access_denied&amp;state=s\">Вернуться в приложение</a>"
    ));
    // Unknown reasons fall back to the error code's wording, then to a general one.
    let html = render_op_error(chrome(Lang::ZhCn), op_error("whatever", "invalid_scope")).unwrap();
    assert!(html.contains(&i18n::t(Lang::ZhCn, "op_error.invalid_scope.text", &[])));
    let html = render_op_error(chrome(Lang::En), op_error("x", "y")).unwrap();
    assert!(html.contains("Can&#39;t sign in to the app"), "{html}");
    // form_post: "Back to the app" is a form carrying the error.
    let mut v = op_error("not_assigned", "access_denied");
    v.back_href = None;
    v.back_form = Some(BackForm {
        action: "https://app.example/cb".into(),
        fields: vec![HiddenView {
            name: "error".into(),
            value: "access_denied".into(),
        }],
    });
    let html = render_op_error(chrome(Lang::En), v).unwrap();
    assert!(html.contains(
        "<form class=\"form form-back\" method=\"post\" action=\"https://app.example/cb\">"
    ));
    assert!(html.contains("name=\"error\" value=\"access_denied\""));
    assert!(html.contains(">Back to the app</button>"));
}

#[test]
fn every_op_error_reason_has_a_title_and_text() {
    for lang in i18n::LANGS {
        for r in OP_ERROR_REASONS {
            for part in ["title", "text"] {
                let key = format!("op_error.{r}.{part}");
                assert!(i18n::has(lang, &key), "{}: {key}", lang.tag());
            }
        }
    }
}

#[test]
fn logout_confirmation_and_signed_out_pages() {
    for lang in i18n::LANGS {
        let html = render_logout_confirm(
            chrome(lang),
            LogoutConfirmView {
                form_action: "/oidc/session/end".into(),
                csrf_token: "c5rf".into(),
                fields: vec![HiddenView {
                    name: "client_id".into(),
                    value: "app-1".into(),
                }],
                user_identifier: Some("ada@example.com".into()),
            },
        )
        .unwrap();
        assert_eq!(html.matches("<form ").count(), 1, "{html}");
        assert!(
            html.contains("name=\"csrf_token\" value=\"c5rf\""),
            "{html}"
        );
        assert!(html.contains("name=\"client_id\" value=\"app-1\""));
        assert!(html.contains(&format!(
            "name=\"confirm\" value=\"yes\">{}<",
            i18n::t(lang, "logout.confirm", &[])
        )));
        assert!(html.contains(&i18n::t(lang, "logout.title", &[])));
        let html = render_signed_out(chrome(lang)).unwrap();
        assert!(
            html.contains(&i18n::t(lang, "signed_out.text", &[])),
            "{html}"
        );
    }
}

#[test]
fn templates_use_only_known_ui_strings() {
    for (name, src) in TEMPLATES {
        for quote in ['\'', '"'] {
            let open = format!("t({quote}");
            let mut rest = src;
            while let Some(i) = rest.find(&open) {
                let after = &rest[i + open.len()..];
                let end = after.find(quote).unwrap();
                let key = &after[..end];
                for lang in i18n::LANGS {
                    assert!(i18n::has(lang, key), "{name}: unknown UI string `{key}`");
                }
                rest = &after[end..];
            }
        }
    }
}

#[test]
fn form_kinds_are_the_strings_the_templates_compare() {
    // flow_forms.html and mod.rs's page builder compare `f.kind` with these strings.
    for (kind, s) in [
        (FormKind::Social, "social"),
        (FormKind::Gaps, "gaps"),
        (FormKind::Profile, "profile"),
        (FormKind::Password, "password"),
        (FormKind::Code, "code"),
        (FormKind::Linked, "linked"),
        (FormKind::Other, "other"),
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), Value::String(s.into()));
    }
    let forms = include_str!("../templates/flow_forms.html");
    for s in ["'password'", "'code'", "'profile'", "'linked'", "'social'"] {
        assert!(forms.contains(s), "flow_forms.html no longer uses {s}");
    }
}

#[test]
fn messages_naming_a_provider_use_its_local_name() {
    let types = |id: &str| match id {
        "dt" => tessera_social::types::get("dingtalk"),
        _ => None,
    };
    let m = text::social_sign_in_failed(
        "DingTalk refused the sign-in: x.",
        "upstream_refused",
        "DingTalk",
        "dt",
    );
    let zh = super::forms::localized_message(Lang::ZhCn, &m, &types);
    assert_eq!(zh.context["provider"], "钉钉");
    let said = message_view(Lang::ZhCn, &zh, false);
    assert!(said.text.starts_with("钉钉"), "{}", said.text);
    let en = super::forms::localized_message(Lang::En, &m, &types);
    assert_eq!(en.context["provider"], "DingTalk");
    // A label the operator chose stays as written; an unknown provider id changes nothing.
    let own = text::social_sign_in_failed("x", "upstream_refused", "Corp login", "dt");
    let own = super::forms::localized_message(Lang::ZhCn, &own, &types);
    assert_eq!(own.context["provider"], "Corp login");
    let gone = text::social_sign_in_failed("x", "upstream_refused", "DingTalk", "gone");
    assert_eq!(
        super::forms::localized_message(Lang::ZhCn, &gone, &types),
        gone
    );
}

#[test]
fn a_login_with_password_and_code_has_two_forms_with_unique_ids_and_a_code_button_by_channel() {
    let mut ui = Ui::new("http://127.0.0.1/self-service/login?flow=1".into());
    ui.nodes.push(Node::csrf("tok"));
    ui.nodes.push(
        Node::input("default", "identifier", "text", Value::Null)
            .required()
            .label(text::label_id()),
    );
    ui.nodes.push(
        Node::input("password", "password", "password", Value::Null).label(text::label_password()),
    );
    ui.nodes.push(
        Node::input("password", "method", "submit", json!("password")).label(text::login_title()),
    );
    ui.nodes
        .push(Node::input("code", "method", "submit", json!("code")).label(text::login_code()));
    let flow = flow_of(FlowKind::Login, ui);
    let types = |id: &str| tessera_social::types::get(id);
    let enums = |_: &str| vec![];
    for (via, lang, button, field) in [
        (Some("email"), Lang::En, "Email me a code", "Email"),
        (
            Some("sms"),
            Lang::Ru,
            "Получить код по СМС",
            "Номер телефона",
        ),
        (
            Some("email+sms"),
            Lang::ZhCn,
            "通过邮件或短信发送验证码",
            "邮箱或手机号",
        ),
    ] {
        let cx = FlowContext {
            lang,
            experience: &Experience::default(),
            provider_type: &types,
            enum_of: &enums,
            identifier_is_email: false,
            code_via: via,
        };
        let forms = flow_forms(&flow, &cx);
        let kinds: Vec<_> = forms.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FormKind::Password, FormKind::Code]);
        let code = &forms[1];
        assert_eq!(code.buttons[0].label, button);
        assert_eq!(code.fields[0].name, "identifier");
        assert_eq!(code.fields[0].label, field);
        assert_ne!(code.fields[0].id, forms[0].fields[0].id, "ids stay unique");
    }
}
