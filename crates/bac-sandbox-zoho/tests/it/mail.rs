//! Zoho Mail: the one account, sending from it, Mail's envelope for answers and errors.
use axum::http::Method;
use serde_json::{json, Value};

use crate::{Sandbox, MAIL_ACCOUNT};

fn send_path(account: &str) -> String {
    format!("/eu/mail/api/accounts/{account}/messages")
}

#[tokio::test]
async fn the_account_sends_and_the_sandbox_keeps_what_it_sent() {
    let s = Sandbox::new();
    let t = s
        .token("ZohoMail.accounts.READ,ZohoMail.messages.ALL")
        .await;
    let a = s.get("/eu/mail/api/accounts", &t).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body["status"],
        json!({"code": 200, "description": "success"})
    );
    let account = &a.body["data"][0];
    assert_eq!(account["accountId"], MAIL_ACCOUNT);
    assert_eq!(account["primaryEmailAddress"], "admin@sandbox.zoho");
    assert_eq!(
        account["sendMailDetails"][0]["fromAddress"],
        "admin@sandbox.zoho"
    );

    let a = s
        .post(
            &send_path(MAIL_ACCOUNT),
            &t,
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "ana@example.test,bo@example.test",
                   "ccAddress": "cc@example.test", "subject": "Hello", "content": "<p>Hi</p>"}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let sent = &a.body["data"];
    assert_eq!(sent["mailFormat"], "html");
    assert_eq!(sent["toAddress"], "ana@example.test,bo@example.test");
    let id = sent["messageId"].as_str().unwrap();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(sent["mailId"], format!("<{id}.sandbox@zoho>"));
    let at: i64 = sent["sentDateInGMT"].as_str().unwrap().parse().unwrap();
    assert!((at / 1000 - s.clock.now()).abs() <= 1);

    let a = s
        .post(
            &send_path(MAIL_ACCOUNT),
            &t,
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "bo@example.test", "mailFormat": "plaintext"}),
        )
        .await;
    assert_eq!(a.body["data"]["mailFormat"], "plaintext", "{a:?}");
    assert_ne!(a.body["data"]["messageId"], id);

    let log = s
        .send(Method::GET, "/eu/_sandbox/zoho/mail/sent", &[], None)
        .await;
    let messages = log.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["accountId"], MAIL_ACCOUNT);
    assert_eq!(messages[0]["subject"], "Hello");
    assert_eq!(messages[0]["messageId"], id);
}

fn error(status: u16, code: &str) -> impl Fn(&Value) -> bool + '_ {
    move |body: &Value| {
        body["status"]["code"] == status
            && body["status"]["description"] == "Invalid Input"
            && body["data"]["errorCode"] == code
    }
}

#[tokio::test]
async fn refusals_are_mail_s() {
    let s = Sandbox::new();
    let a = s.get("/eu/mail/api/accounts", "bad").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.body,
        json!({"status": {"code": 401, "description": "Invalid Input"},
               "data": {"errorCode": "INVALID_OAUTHTOKEN", "moreInfo": "Invalid OAuth token"}})
    );
    let t = s
        .token("ZohoMail.messages.READ,ZohoMail.accounts.READ")
        .await;
    let a = s
        .post(
            &send_path(MAIL_ACCOUNT),
            &t,
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c"}),
        )
        .await;
    assert_eq!(a.status, 401);
    assert!(error(401, "INVALID_OAUTHSCOPE")(&a.body), "{a:?}");

    let t = s.token("ZohoMail.messages.CREATE").await;
    let a = s.get("/eu/mail/api/accounts", &t).await;
    assert!(error(401, "INVALID_OAUTHSCOPE")(&a.body), "{a:?}");
    let a = s
        .post(
            &send_path("2560100000001"),
            &t,
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c"}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(error(400, "INVALID_ACCOUNT")(&a.body), "{a:?}");
    let a = s.post(&send_path("%FF"), &t, json!({})).await;
    assert!(error(400, "INVALID_ACCOUNT")(&a.body), "{a:?}");

    let a = s
        .call(
            Method::POST,
            &send_path(MAIL_ACCOUNT),
            &t,
            &[],
            Some("not json".into()),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(error(400, "INVALID_INPUT")(&a.body), "{a:?}");
    for (body, names) in [
        (json!({"toAddress": "a@b.c"}), "fromAddress"),
        (
            json!({"fromAddress": "eve@evil.test", "toAddress": "a@b.c"}),
            "fromAddress",
        ),
        (json!({"fromAddress": "admin@sandbox.zoho"}), "toAddress"),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c,nobody"}),
            "toAddress",
        ),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": ["a@b.c"]}),
            "toAddress",
        ),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c", "ccAddress": "x"}),
            "ccAddress",
        ),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c", "mailFormat": "rtf"}),
            "mailFormat",
        ),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c", "askReceipt": true}),
            "askReceipt",
        ),
        (
            json!({"fromAddress": "admin@sandbox.zoho", "toAddress": "a@b.c", "subject": 1}),
            "subject",
        ),
    ] {
        let a = s.post(&send_path(MAIL_ACCOUNT), &t, body.clone()).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(error(400, "INVALID_INPUT")(&a.body), "{body}: {a:?}");
        let more = a.body["data"]["moreInfo"].as_str().unwrap();
        assert!(more.starts_with(names), "{body}: {more}");
    }
    let log = s
        .send(Method::GET, "/eu/_sandbox/zoho/mail/sent", &[], None)
        .await;
    assert_eq!(log.body, json!({"messages": []}));
}
