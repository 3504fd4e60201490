//! Forms that guide, driven by `tether::testing` (issue 25, items 4 and 5): the used fields
//! a form event sends, the loading state a handler sees while it runs and that its reply
//! ends, flash messages (text only, by kind, closable without a frame), and the recovery a
//! rejoin sends. Run with `cargo test --features testing --test forms`.
#![cfg(feature = "testing")]

use serde_json::{Value, json};
use tether::{
    Endpoint,
    channel::BoxError,
    commander::{Commander, Handlers, Page, Patch, PatchError, Sender},
    testing::{self, TestApp},
};

/// The recoveries this page's handler saw.
#[derive(Default)]
struct Recoveries(Vec<Value>);

struct Forms;

impl Forms {
    /// Shows which fields were used, and the email error only once the email was used.
    async fn validate(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.apply(Patch::set("#used", sender.used_fields.join(",")))?;
        let email = sender
            .form
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("");
        let error = if sender.used("email") && !email.contains('@') {
            "not an email"
        } else {
            ""
        };
        page.apply(Patch::set("#email-error", error))?;
        if sender.recovery {
            let seen = json!({"form": sender.form, "event": sender.event, "id": sender.id});
            page.get_mut::<Recoveries>().0.push(seen);
            let all = Value::Array(page.get_mut::<Recoveries>().0.clone());
            page.apply(Patch::set("#recovered", all.to_string()))?;
        }
        Ok(())
    }

    /// While it runs, reads the sender's and its form's loading state from the page.
    async fn save(&self, page: &mut Page, sender: Sender) -> Result<Value, BoxError> {
        let button = page
            .query_one("#save", &["className", "textContent"])
            .await?;
        let form = page.query_one("#profile", &["className"]).await?;
        Ok(json!({"button": button, "form": form, "used": sender.used_fields}))
    }

    /// A handler that changes the text tether-disable-with replaced: the server's text stays.
    async fn rename(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.apply(Patch::set("#rename", "Renamed"))?;
        Ok(())
    }

    async fn flash(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let kind = sender.arg["kind"].as_str().unwrap_or("");
        let text = sender.arg["text"].as_str().unwrap_or("");
        match page.put_flash(kind, text) {
            Err(PatchError::InvalidFlashKind(_)) => {
                page.apply(Patch::set("#flash-refused", kind))?;
                Ok(())
            }
            other => Ok(other?),
        }
    }

    async fn clear(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.clear_flash(sender.arg.as_str())?;
        Ok(())
    }
}

impl Commander for Forms {
    fn name(&self) -> &'static str {
        "forms"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("validate", Self::validate)
            .on("save", Self::save)
            .on("rename", Self::rename)
            .on("flash", Self::flash)
            .on("clear", Self::clear)
    }
}

const BODY: &str = r#"<form id="profile" tether-change="validate" tether-submit="save">
  <input name="name" id="name"> <input name="email" id="email"> <p id="email-error"></p>
  <label><input type="checkbox" name="news" id="news" value="yes"> news</label>
  <button id="save" tether-disable-with="Saving…">Save</button>
</form>
<form tether-change="validate"><input name="anonymous" id="anonymous"></form>
<form id="quiet" tether-change="validate" tether-auto-recover="ignore"><input name="quiet" id="quiet-field"></form>
<p id="used"></p> <p id="recovered"></p>
<button id="rename" tether-click="rename" tether-disable-with="Renaming…">Rename</button>
<div id="all-flash" tether-flash></div> <div id="errors" tether-flash="error"></div>
<div tether-ignore><div id="ignored-flash" tether-flash></div></div>
<button id="info" tether-click='flash({"kind": "info", "text": "<b>Saved</b>"})'>info</button>
<button id="info2" tether-click='flash({"kind": "info", "text": "Saved again"})'>info2</button>
<button id="error" tether-click='flash({"kind": "error", "text": "Failed"})'>error</button>
<button id="bad-kind" tether-click='flash({"kind": "no spaces", "text": "x"})'>bad</button>
<button id="clear-info" tether-click='clear("info")'>clear info</button>
<p id="flash-refused"></p>"#;

fn serve() -> TestApp {
    let endpoint = Endpoint::builder(testing::config())
        .and_then(|builder| builder.commander(Forms).build())
        .expect("the endpoint builds");
    TestApp::serve_page(endpoint, "forms", |_| BODY.to_string())
}

#[tokio::test]
async fn a_field_is_used_once_typed_in_and_left_or_changed_or_submitted() {
    let app = serve();
    let mut page = app.open("/").await;
    // Typing alone (no blur, no change) does not make the name used.
    page.type_text("#name", "Ada", std::time::Duration::ZERO)
        .await;
    // A changed email is used: its change event says so, and its error shows.
    page.fill("#email", "ada").await;
    assert_eq!(page.text("#used"), "email");
    assert_eq!(page.text("#email-error"), "not an email");
    // Leaving the name makes it used for the next event.
    page.event("#name", "blur").await;
    page.check("#news", true).await;
    assert_eq!(page.text("#used"), "email,name,news");
    // Another form's fields are its own.
    page.fill("#anonymous", "x").await;
    assert_eq!(page.text("#used"), "anonymous");
}

#[tokio::test]
async fn a_submit_uses_every_field_and_a_reset_forgets() {
    let app = serve();
    let mut page = app.open("/").await;
    let result = page.submit("#profile").await.expect("save replied");
    assert_eq!(result["used"], json!(["name", "email", "news", "save"]));
    page.event("#profile", "reset").await;
    page.fill("#name", "Ada").await;
    assert_eq!(page.text("#used"), "name");
    assert_eq!(
        page.text("#email-error"),
        "",
        "an unused email shows no error"
    );
}

#[tokio::test]
async fn the_sender_and_its_form_are_loading_while_the_handler_runs() {
    let app = serve();
    let mut page = app.open("/").await;
    let seen = page.click("#save").await.expect("save replied");
    assert_eq!(seen["button"]["textContent"], "Saving…");
    assert_eq!(seen["button"]["className"], "tether-loading");
    assert_eq!(seen["form"]["className"], "tether-loading");
    // The reply restored both.
    assert_eq!(page.text("#save"), "Save");
    assert_eq!(page.attr("#save", "class").as_deref(), Some(""));
    assert_eq!(page.attr("#profile", "class").as_deref(), Some(""));
    // A text the server changed meanwhile is the server's.
    page.click("#rename").await;
    assert_eq!(page.text("#rename"), "Renamed");
}

#[tokio::test]
async fn a_flash_is_text_in_the_containers_of_its_kind_and_closes_in_the_page() {
    let app = serve();
    let mut page = app.open("/").await;
    page.click("#info").await;
    let info = "#all-flash .tether-flash-message[data-kind=info] .tether-flash-text";
    assert_eq!(page.text(info), "<b>Saved</b>", "text, never markup");
    assert_eq!(page.count("#all-flash b"), 0);
    assert_eq!(
        page.count("#errors .tether-flash-message"),
        0,
        "only errors there"
    );
    assert_eq!(page.count("#ignored-flash *"), 0, "never in tether-ignore");
    // The same kind replaces; another kind adds.
    page.click("#info2").await;
    page.click("#error").await;
    assert_eq!(
        page.texts("#all-flash .tether-flash-text"),
        ["Saved again", "Failed"]
    );
    assert_eq!(page.texts("#errors .tether-flash-text"), ["Failed"]);
    assert_eq!(
        page.attr("#errors .tether-flash-message", "role")
            .as_deref(),
        Some("alert")
    );
    // Closing one removes it from its container only, without an event.
    page.click("#errors .tether-flash-close").await;
    assert_eq!(page.count("#errors .tether-flash-message"), 0);
    assert_eq!(page.count("#all-flash .tether-flash-message"), 2);
    page.click("#clear-info").await;
    assert_eq!(page.texts("#all-flash .tether-flash-text"), ["Failed"]);
    // A kind that is not a plain word is refused on the server.
    page.click("#bad-kind").await;
    assert_eq!(page.text("#flash-refused"), "no spaces");
    assert_eq!(page.count("#all-flash .tether-flash-message"), 1);
}

#[tokio::test]
async fn a_rejoin_recovers_the_forms_with_an_id_and_a_change_handler() {
    let app = serve();
    let mut page = app.open("/").await;
    page.fill("#name", "Ada").await;
    page.fill("#anonymous", "no id").await;
    page.fill("#quiet-field", "opted out").await;
    assert_eq!(page.text("#recovered"), "", "no recovery before a rejoin");
    page.reconnect().await;
    let recovered: Value = serde_json::from_str(&page.text("#recovered")).expect("JSON");
    assert_eq!(
        recovered,
        json!([{
            "form": {"name": "Ada", "email": ""},
            "event": {"type": "change"},
            "id": "profile",
        }]),
        "only #profile: the other has no id, #quiet opted out"
    );
    assert_eq!(page.text("#used"), "name", "the used fields come along");
}
