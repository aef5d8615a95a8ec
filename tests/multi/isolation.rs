//! Two sites in one process: each with its own JWT secret, SMTP server and providers; a
//! user of one is invisible to the other.

use reqwest::Method;
use serde_json::{json, Value};

use super::fake::{FakeProvider, CLIENT_ID, CLIENT_SECRET};
use super::smtp_server::{ServerOptions, SmtpServer};
use super::*;

#[tokio::test]
async fn users_tokens_and_admin_lists_stay_in_their_instance() {
    for engine in engines() {
        let app = Multi::spawn_on(engine, &[]).await;
        let a = app.create(site_config("secret-of-a", "https://a.example.com")).await;
        let b = app.create(site_config("secret-of-b", "https://b.example.com")).await;
        assert_eq!(app.signup(a, "ann@example.com", "pw-a").await.status, 200);
        let login = app.login(a, "ann@example.com", "pw-a").await;
        assert_eq!(login.status, 200, "{}", login.text);
        let access = login.json["access_token"].as_str().unwrap().to_owned();
        let claims = decode_hs256(&access, "secret-of-a");
        assert_eq!(claims["email"], "ann@example.com");
        // Not a user of b: no login, no signature accepted, no refresh.
        let r = app.login(b, "ann@example.com", "pw-a").await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.json["error"], "invalid_grant");
        let r = app.send(app.site(Method::GET, "/user", b).bearer_auth(&access)).await;
        assert_eq!(r.status, 401, "{}", r.text);
        let r = app.send(app.site(Method::GET, "/user", a).bearer_auth(&access)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let refresh = login.json["refresh_token"].as_str().unwrap();
        let r = app.send(app.site(Method::POST, "/token", b).form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])).await;
        assert_eq!(r.status, 400, "{}", r.text);
        // The same address signs up separately on b.
        assert_eq!(app.signup(b, "ann@example.com", "pw-b").await.status, 200);
        assert_eq!(app.login(b, "ann@example.com", "pw-b").await.status, 200);
        assert_eq!(app.login(a, "ann@example.com", "pw-b").await.status, 400);
        assert_eq!(app.signup(b, "bob@example.com", "pw").await.status, 200);
        // Admin lists: the operator token is an admin of every instance, and sees only the
        // instance the signature names.
        let list = |id| app.send(app.site(Method::GET, "/admin/users", id).bearer_auth(OPERATOR));
        let emails = |r: &Reply| -> Vec<String> {
            let mut v: Vec<String> = r.json["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect();
            v.sort();
            v
        };
        let ra = list(a).await;
        assert_eq!(ra.status, 200, "{}", ra.text);
        assert_eq!(emails(&ra), ["ann@example.com"], "{engine:?}");
        assert_eq!(emails(&list(b).await), ["ann@example.com", "bob@example.com"], "{engine:?}");
        // A's admin token means nothing to b.
        let user_a = claims["sub"].as_str().unwrap().to_owned();
        let r = app.send(app.site(Method::GET, &format!("/admin/users/{user_a}"), b).bearer_auth(OPERATOR)).await;
        assert_eq!(r.status, 404, "{}", r.text);
    }
}

#[tokio::test]
async fn each_instance_mails_through_its_own_smtp_server() {
    let sink_a = SmtpServer::start(ServerOptions::default()).await;
    let sink_b = SmtpServer::start(ServerOptions::default()).await;
    let app = Multi::spawn().await;
    let smtp = |port: u16, from: &str| json!({"host": "127.0.0.1", "port": port, "admin_email": from});
    let a =
        app.create(json!({"site_url": "https://a.example.com", "jwt": {"secret": "a"}, "smtp": smtp(sink_a.port, "a@example.com")})).await;
    let b = app
        .create(json!({"site_url": "https://b.example.com", "jwt": {"secret": "b"}, "smtp": smtp(sink_b.port, "b@example.com"),
        "mailer": {"subjects": {"confirmation": "Welcome to B"}}}))
        .await;
    let r = app.signup(a, "one@example.com", "pw").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.signup(b, "two@example.com", "pw").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.signup(b, "three@example.com", "pw").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (ma, mb) = (sink_a.messages(), sink_b.messages());
    assert_eq!(ma.len(), 1, "{ma:?}");
    assert_eq!(mb.len(), 2, "{mb:?}");
    assert_eq!(ma[0].rcpt_to, ["one@example.com"]);
    assert!(ma[0].data.contains("From: a@example.com"), "{}", ma[0].data);
    assert!(ma[0].data.contains("https://a.example.com/"), "link on a's site");
    assert!(mb[0].data.contains("From: b@example.com"), "{}", mb[0].data);
    assert!(mb[0].data.contains("Subject: Welcome to B"), "{}", mb[0].data);
    assert!(app.outbox.sent().is_empty(), "nothing went to the fallback mailer");
    // An instance without an SMTP host uses the fallback (the server's own mailer).
    let c = app.create(json!({"site_url": "https://c.example.com", "jwt": {"secret": "c"}})).await;
    assert_eq!(app.signup(c, "four@example.com", "pw").await.status, 200);
    assert!(app.outbox.last_to("four@example.com").is_some());
}

#[tokio::test]
async fn each_instance_has_its_own_providers_and_the_callback_finds_the_instance_in_the_state() {
    let fake = FakeProvider::start().await;
    let receiver = super::hooks::Receiver::start(200).await;
    let app = Multi::spawn_on(Engine::Sqlite, &[("GOTRUE_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let callback = format!("{}/callback", app.url);
    let provider = |enabled: bool| json!({"enabled": enabled, "client_id": CLIENT_ID, "secret": CLIENT_SECRET, "redirect_uri": callback, "url": fake.url});
    let a = app
        .create(json!({"site_url": "https://a.example.com", "jwt": {"secret": "secret-a"}, "external": {"github": provider(true)}}))
        .await;
    let b = app
        .create(json!({"site_url": "https://b.example.com", "jwt": {"secret": "secret-b"}, "external": {"gitlab": provider(true)}}))
        .await;
    let settings = |id| app.send(app.site(Method::GET, "/settings", id));
    let sa = settings(a).await.json["external"].clone();
    let sb = settings(b).await.json["external"].clone();
    assert_eq!((sa["github"].clone(), sa["gitlab"].clone()), (Value::Bool(true), Value::Bool(false)));
    assert_eq!((sb["github"].clone(), sb["gitlab"].clone()), (Value::Bool(false), Value::Bool(true)));
    let r = app.send(app.site(Method::GET, "/authorize?provider=github", b)).await;
    r.assert_error(400, "Unsupported provider: Provider is not enabled");

    // The whole login on a, with a browser that keeps cookies; /callback carries no header.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_provider(Arc::clone(&jar)).build().unwrap();
    let hooks = json!({"signup": [format!("{}/identity-signup", receiver.url)]});
    let sign = nf_sign(&json!({"id": a, "netlify_id": "site-a", "function_hooks": hooks}));
    let authorize = app.send(browser.get(format!("{}/authorize?provider=github", app.url)).header("x-nf-sign", sign)).await;
    assert_eq!(authorize.status, 302, "{}", authorize.text);
    let at_provider = app.send(browser.get(authorize.location())).await;
    let callback_url = at_provider.location();
    assert!(callback_url.starts_with(&callback), "{callback_url}");
    // The state is signed with the operator token and names the instance.
    let state = url::Url::parse(&callback_url).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let claims = decode_hs256(&state, OPERATOR);
    assert_eq!(claims["id"], a.to_string());
    assert_eq!(claims["netlify_id"], "site-a");
    assert_eq!(claims["function_hooks"], hooks, "SCENARIOS.md 5.2: the state carries the function hooks");
    // A state, signed with the same key, is no x-nf-sign.
    let r = app.send(app.at(Method::GET, "/settings").header("x-nf-sign", &state)).await;
    r.assert_error(400, "Operator microservice signature is invalid: an OAuth state is not an operator signature");
    let done = app.send(browser.get(&callback_url)).await;
    assert_eq!(done.status, 302, "{}", done.text);
    let target = done.location();
    assert!(target.starts_with("https://a.example.com"), "{target}");
    let fragment: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(target.split_once('#').unwrap().1.as_bytes()).into_owned().collect();
    let token = decode_hs256(&fragment["access_token"], "secret-a");
    let user = uuid::Uuid::parse_str(token["sub"].as_str().unwrap()).unwrap();
    assert!(app.store.users().find_user_by_id(Some(a), user).await.unwrap().is_some(), "created in instance a");
    assert!(app.store.users().find_user_by_id(Some(b), user).await.unwrap().is_none());
    // The new, verified account was confirmed: the state's function hook heard of it,
    // signed with a's secret.
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].path.as_str(), calls[0].event.as_str()), ("/identity-signup", "identity_signup"));
    assert_eq!(calls[0].body["instance_id"], a.to_string());
    assert_eq!(decode_hs256(&calls[0].signature, "secret-a")["sub"], a.to_string());
    // A callback without a state, or with a forged one, is refused before any instance work.
    app.send(app.at(Method::GET, "/callback?code=x")).await.assert_error(400, "OAuth state parameter missing");
    let r = app
        .send(app.at(Method::GET, &format!("/callback?code=x&state={}", sign_with(&json!({"id": a, "provider": "github"}), "nope"))))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}
