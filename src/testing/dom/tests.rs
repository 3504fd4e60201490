//! Unit tests of the DOM model: each rule of tether.js the model ports, on small pages.

use serde_json::{Map, Value, json};

use super::events::{GESTURE_EVENTS, is_gesture, parse_handler, parse_on, truncate};
use super::patch::{built_selector, refusal};
use super::{Dom, Effect};

fn page(body: &str) -> Dom {
    Dom::parse(&format!(
        "<!DOCTYPE html><html><head></head><body>{body}</body></html>"
    ))
}

fn body(dom: &Dom) -> String {
    dom.inner_html(&dom.body())
}

fn el(dom: &Dom, sel: &str) -> kuchikiki::NodeRef {
    match dom.select_first(sel) {
        Ok(Some(el)) => el,
        other => panic!("no element {sel}: {other:?}"),
    }
}

fn patch(dom: &mut Dom, p: Value) -> Result<Effect, String> {
    dom.apply_patch(&p, false, &mut |_| {})
}

fn refused(p: Value, exec_js: bool) -> Option<String> {
    refusal(p.as_object().expect("a patch object"), exec_js)
}

// ---- tree, serialization ----

#[test]
fn serialization_is_chromiums() {
    let dom = page(
        "<p a=\"x&amp;&quot;&nbsp;\">1 &lt; 2 &amp; 3&nbsp;</p><br><input value=\"v\"><template><b>t</b></template><script>a < b && c</script><!--c-->",
    );
    assert_eq!(
        body(&dom),
        "<p a=\"x&amp;&quot;&nbsp;\">1 &lt; 2 &amp; 3&nbsp;</p><br><input value=\"v\"><template><b>t</b></template><script>a < b && c</script><!--c-->"
    );
    assert!(
        dom.html().starts_with("<html><head></head><body>"),
        "{}",
        dom.html()
    );
}

#[test]
fn removing_an_attribute_keeps_the_order_of_the_others() {
    let mut dom = page("<p id=\"p\" a=\"1\" b=\"2\" c=\"3\"></p>");
    let p = el(&dom, "#p");
    dom.set_attr(&p, "a", None);
    dom.set_attr(&p, "b", Some("9"));
    dom.set_attr(&p, "d", Some("4"));
    assert_eq!(
        dom.outer_html(&p),
        "<p id=\"p\" b=\"9\" c=\"3\" d=\"4\"></p>"
    );
}

#[test]
fn selectors_match_select_and_close() {
    let dom = page("<div class=\"a\"><p id=\"x\" class=\"b\">t</p></div><p class=\"b\"></p>");
    assert_eq!(dom.select_all("p.b").map(|v| v.len()), Ok(2));
    assert!(dom.select_all("p[").is_err());
    let x = el(&dom, "#x");
    assert_eq!(dom.matches(&x, ".b"), Ok(true));
    assert_eq!(
        dom.closest(&x, "div").map(|d| dom.tag(&d)),
        Some("div".to_string())
    );
    assert!(dom.closest(&x, "[").is_none());
    assert_eq!(dom.text(&el(&dom, "div")), "t");
}

// ---- live state ----

#[test]
fn a_typed_value_is_live_state_beside_the_attribute() {
    let mut dom = page(
        "<input id=\"i\" value=\"a\"><textarea id=\"t\">x</textarea><input id=\"c\" type=\"checkbox\">",
    );
    let i = el(&dom, "#i");
    assert_eq!(dom.value(&i), "a");
    dom.set_value(&i, "typed");
    assert_eq!(dom.value(&i), "typed");
    assert_eq!(dom.attr(&i, "value").as_deref(), Some("a"));
    // The attribute no longer drives a dirty value.
    dom.set_attr(&i, "value", Some("b"));
    assert_eq!(dom.value(&i), "typed");
    let t = el(&dom, "#t");
    assert_eq!(dom.value(&t), "x");
    dom.set_value(&t, "y");
    assert_eq!(
        (dom.value(&t), dom.text(&t)),
        ("y".to_string(), "x".to_string())
    );
    let c = el(&dom, "#c");
    assert!(!dom.checked(&c));
    assert_eq!(dom.value(&c), "on");
    dom.set_checked(&c, true);
    assert!(dom.checked(&c));
    assert!(dom.attr(&c, "checked").is_none());
}

#[test]
fn checking_a_radio_unchecks_its_group_only() {
    let mut dom = page(
        "<form><input type=\"radio\" name=\"r\" id=\"a\" checked><input type=\"radio\" name=\"r\" id=\"b\"></form>\
         <input type=\"radio\" name=\"r\" id=\"c\" checked>",
    );
    let (a, b, c) = (el(&dom, "#a"), el(&dom, "#b"), el(&dom, "#c"));
    dom.set_checked(&b, true);
    assert!(!dom.checked(&a));
    assert!(dom.checked(&b));
    assert!(dom.checked(&c), "another form's group");
}

#[test]
fn selects_read_and_take_their_options() {
    let mut dom = page(
        "<select id=\"s\"><option>a</option><option value=\"B\" selected>b</option></select>\
         <select id=\"m\" multiple><option>x</option><option>y</option><option>z</option></select>\
         <select id=\"n\"><option>first</option><option>second</option></select>",
    );
    let s = el(&dom, "#s");
    assert_eq!(dom.value(&s), "B");
    assert_eq!(
        dom.value(&el(&dom, "#n")),
        "first",
        "a single select shows its first option"
    );
    dom.select_options(&s, &["a"]).expect("a is an option");
    assert_eq!(dom.value(&s), "a");
    assert!(dom.select_options(&s, &["nope"]).is_err());
    let m = el(&dom, "#m");
    dom.select_options(&m, &["x", "z"]).expect("options");
    let form_like = dom.read_prop(&m, "selectedIndex");
    assert_eq!(form_like, json!(0));
    let n = el(&dom, "#n");
    dom.set_value(&n, "nothing");
    assert_eq!(dom.value(&n), "", "no option has the value: none selected");
}

#[test]
fn disabled_counts_a_disabled_fieldset_but_its_first_legend() {
    let dom = page(
        "<fieldset disabled><legend><input id=\"in-legend\"></legend><input id=\"inside\"></fieldset>\
         <button id=\"own\" disabled></button><button id=\"free\"></button>",
    );
    assert!(dom.disabled(&el(&dom, "#inside")));
    assert!(!dom.disabled(&el(&dom, "#in-legend")));
    assert!(dom.disabled(&el(&dom, "#own")));
    assert!(!dom.disabled(&el(&dom, "#free")));
}

#[test]
fn live_state_of_a_freed_node_never_passes_to_a_new_one() {
    let mut dom = page("<div id=\"d\"></div>");
    let d = el(&dom, "#d");
    for round in 0..20 {
        dom.set_prop(&d, "innerHTML", &json!(""), true)
            .expect("innerHTML");
        dom.set_prop(
            &d,
            "innerHTML",
            &json!("<input id=\"i\" value=\"attr\">"),
            true,
        )
        .expect("innerHTML");
        let i = el(&dom, "#i");
        assert_eq!(
            dom.value(&i),
            "attr",
            "round {round}: a fresh input reads its attribute"
        );
        dom.set_value(&i, "typed");
    }
    // An entry left at a node's address by another node (what address reuse would do) is
    // not that node's: the Weak reference is checked.
    let (a, b) = (el(&dom, "#i"), el(&dom, "#d"));
    let stale = super::Entry {
        node: std::rc::Rc::downgrade(&a.0),
        live: super::Live {
            value: Some("stale".into()),
            ..Default::default()
        },
    };
    dom.live.insert(super::key(&b), stale);
    assert!(dom.live_of(&b).is_none());
    dom.set_layout_prop(&b, "offsetWidth", json!(3));
    assert_eq!(dom.read_prop(&b, "offsetWidth"), json!(3));
    assert_eq!(dom.read_prop(&b, "value"), Value::Null);
}

#[test]
fn remove_detaches_an_element() {
    let mut dom = page("<p id=\"a\">a</p><p id=\"b\">b</p>");
    let a = el(&dom, "#a");
    dom.remove(&a);
    assert_eq!(body(&dom), "<p id=\"b\">b</p>");
    assert!(a.parent().is_none());
}

// ---- read_prop ----

#[test]
fn read_prop_reads_groups_reflections_layout_and_expandos() {
    let mut dom = page(
        "<div id=\"d\" class=\"a b a\" data-foo-bar=\"1\" style=\"color: red; width: 10px\" title=\"t\" hidden>x<b>y</b></div><a id=\"a\" href=\"/p\">l</a>",
    );
    let d = el(&dom, "#d");
    assert_eq!(dom.read_prop(&d, "dataset"), json!({"fooBar": "1"}));
    assert_eq!(dom.read_prop(&d, "classList"), json!(["a", "b"]));
    assert_eq!(
        dom.read_prop(&d, "style"),
        json!({"color": "red", "width": "10px"})
    );
    assert_eq!(dom.read_prop(&d, "attributes")["title"], json!("t"));
    assert_eq!(dom.read_prop(&d, "className"), json!("a b a"));
    assert_eq!(dom.read_prop(&d, "hidden"), json!(true));
    assert_eq!(dom.read_prop(&d, "textContent"), json!("xy"));
    assert_eq!(dom.read_prop(&d, "innerHTML"), json!("x<b>y</b>"));
    assert_eq!(dom.read_prop(&d, "tagName"), json!("DIV"));
    assert_eq!(
        dom.read_prop(&d, "value"),
        Value::Null,
        "a div has no value"
    );
    assert_eq!(
        dom.read_prop(&d, "disabled"),
        Value::Null,
        "a div has no disabled"
    );
    assert_eq!(dom.read_prop(&d, "offsetWidth"), Value::Null);
    dom.set_layout_prop(&d, "offsetWidth", json!(120));
    assert_eq!(dom.read_prop(&d, "offsetWidth"), json!(120));
    dom.set_prop(&d, "answer", &json!(42), false)
        .expect("expando");
    dom.set_prop(&d, "things", &json!([1]), false)
        .expect("expando");
    assert_eq!(dom.read_prop(&d, "answer"), json!(42));
    assert_eq!(
        dom.read_prop(&d, "things"),
        Value::Null,
        "an object reads null"
    );
    assert_eq!(dom.read_prop(&d, "__proto__"), Value::Null);
    assert_eq!(dom.read_prop(&el(&dom, "#a"), "href"), json!("/p"));
    dom.set_checked(&d, true);
    assert_eq!(
        dom.read_prop(&d, "checked"),
        json!(true),
        "checked on a div is an expando"
    );
}

#[test]
fn selector_of_is_the_id_or_a_stamp() {
    let mut dom = page("<p id=\"1a\">x</p><p class=\"s\">y</p><i tether-id=\"t1\"></i>");
    assert_eq!(dom.selector_of(&el(&dom, "p")), "#\\31 a");
    let s = el(&dom, ".s");
    assert_eq!(dom.selector_of(&s), "[tether-id=\"t2\"]", "t1 is taken");
    assert_eq!(dom.selector_of(&s), "[tether-id=\"t2\"]", "stamped once");
}

// ---- patches: refusal ----

#[test]
fn refusal_follows_the_servers_rules() {
    assert!(refused(json!({"op": "js", "js": "1"}), false).is_some());
    assert!(refused(json!({"op": "js", "js": "1"}), true).is_none());
    assert!(refused(json!({"op": "morph", "sel": "#x"}), false).is_some());
    assert!(refused(json!({"op": "morph", "sel": "#x", "html": ""}), false).is_none());
    assert!(
        refused(
            json!({"op": "prop", "prop": "__proto__", "html": "x"}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "prop", "prop": "innerHTML", "value": "x"}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "prop", "prop": "innerHTML", "html": "x"}),
            false
        )
        .is_none()
    );
    assert!(
        refused(
            json!({"op": "prop", "prop": "onclick", "value": "x"}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "prop", "prop": "href", "value": "\u{1}JavaScript:x"}),
            false
        )
        .is_some()
    );
    assert!(refused(json!({"op": "prop", "prop": "href", "value": "/ok"}), false).is_none());
    assert!(refused(json!({"op": "props", "props": []}), false).is_some());
    assert!(refused(json!({"op": "props", "props": {"style": "x"}}), false).is_some());
    assert!(refused(json!({"op": "props", "props": {"srcdoc": "x"}}), false).is_some());
    assert!(
        refused(
            json!({"op": "props", "props": {"dataset": {"constructor": "x"}}}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "props", "props": {"attributes": {"xlink:href": "vbscript:x"}}}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "props", "props": {"attributes": {"ONload": "x"}}}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "props", "props": {"attributes": {"href": null}}}),
            false
        )
        .is_none()
    );
    assert!(
        refused(
            json!({"op": "props", "props": {"classList": {"add": "x"}}}),
            false
        )
        .is_some()
    );
    assert!(
        refused(
            json!({"op": "props", "props": {"classList": {"replace": []}}}),
            false
        )
        .is_some()
    );
    assert!(refused(json!({"op": "redirect"}), false).is_some());
    assert!(refused(json!({"op": "set_url", "url": "javascript:x"}), false).is_some());
    assert!(refused(json!({"op": "redirect", "url": "/x"}), false).is_none());
    assert!(refused(json!({"op": "console", "level": "trace"}), false).is_some());
    assert!(refused(json!({"op": "console", "level": "warn"}), false).is_none());
    assert!(refused(json!({"op": "cookie", "name": "a b"}), false).is_some());
    assert!(refused(json!({"op": "cookie", "name": "a", "value": "x;y"}), false).is_some());
    assert!(refused(json!({"op": "cookie", "name": "a", "path": "/\""}), false).is_some());
    assert!(refused(json!({"op": "cookie", "name": "a", "max_age": 1.5}), false).is_some());
    assert!(
        refused(
            json!({"op": "cookie", "name": "a", "value": "b", "path": "/", "max_age": 60}),
            false
        )
        .is_none()
    );
}

#[test]
fn non_element_ops_are_effects() {
    let mut dom = page("");
    assert_eq!(
        dom.apply_patch(&json!({"op": "js", "js": "go()"}), true, &mut |_| {}),
        Ok(Effect::Js("go()".into()))
    );
    assert!(patch(&mut dom, json!({"op": "js", "js": "go()"})).is_err());
    assert_eq!(
        patch(&mut dom, json!({"op": "redirect", "url": "/a"})),
        Ok(Effect::Redirect("/a".into()))
    );
    assert_eq!(
        patch(&mut dom, json!({"op": "set_url", "url": "/b"})),
        Ok(Effect::SetUrl("/b".into()))
    );
    assert_eq!(
        patch(
            &mut dom,
            json!({"op": "console", "level": "info", "msg": "m"})
        ),
        Ok(Effect::Console {
            level: "info".into(),
            msg: "m".into()
        })
    );
    assert_eq!(
        patch(
            &mut dom,
            json!({"op": "cookie", "name": "a", "value": null, "path": "/"})
        ),
        Ok(Effect::Cookie {
            name: "a".into(),
            value: None,
            path: Some("/".into()),
            max_age: None
        })
    );
    assert!(patch(&mut dom, json!({"op": "explode", "sel": "p"})).is_err());
    assert!(patch(&mut dom, json!({"op": "text", "sel": "p[", "text": "x"})).is_err());
    // querySelectorAll(undefined) looks for <undefined> elements: nothing, and no error.
    assert_eq!(
        patch(&mut dom, json!({"op": "text", "text": "x"})),
        Ok(Effect::Done)
    );
}

// ---- patches: element ops ----

#[test]
fn element_ops_change_every_match() {
    let mut dom = page("<p class=\"x\">a</p><p class=\"x\">b</p><div id=\"d\"><i>i</i></div>");
    patch(&mut dom, json!({"op": "text", "sel": ".x", "text": "<t>"})).expect("text");
    assert_eq!(
        body(&dom),
        "<p class=\"x\">&lt;t&gt;</p><p class=\"x\">&lt;t&gt;</p><div id=\"d\"><i>i</i></div>"
    );
    patch(
        &mut dom,
        json!({"op": "html", "sel": "#d", "html": "<b>h</b>"}),
    )
    .expect("html");
    patch(
        &mut dom,
        json!({"op": "insert", "sel": "#d", "position": "afterbegin", "html": "<u>0</u>"}),
    )
    .expect("insert");
    patch(
        &mut dom,
        json!({"op": "insert", "sel": "#d", "position": "afterend", "text": "&"}),
    )
    .expect("insert");
    patch(
        &mut dom,
        json!({"op": "insert", "sel": "#d", "position": "beforebegin", "html": "<hr>"}),
    )
    .expect("insert");
    patch(
        &mut dom,
        json!({"op": "insert", "sel": "#d", "position": "beforeend", "text": "z"}),
    )
    .expect("insert");
    assert!(
        patch(
            &mut dom,
            json!({"op": "insert", "sel": "#d", "position": "middle", "text": "z"})
        )
        .is_err()
    );
    patch(&mut dom, json!({"op": "remove", "sel": ".x"})).expect("remove");
    assert_eq!(body(&dom), "<hr><div id=\"d\"><u>0</u><b>h</b>z</div>&amp;");
}

#[test]
fn prop_and_props_patches_set_live_state_reflections_and_groups() {
    let mut dom =
        page("<input id=\"i\" value=\"a\"><div id=\"d\" style=\"color: red;\" class=\"k\">x</div>");
    let mut disowned = Vec::new();
    let mut told = |e: &kuchikiki::NodeRef| disowned.push(e.clone());
    dom.apply_patch(
        &json!({"op": "prop", "sel": "#i", "prop": "value", "value": "b"}),
        false,
        &mut told,
    )
    .expect("value");
    dom.apply_patch(
        &json!({"op": "prop", "sel": "#i", "prop": "disabled", "value": true}),
        false,
        &mut told,
    )
    .expect("d");
    dom.apply_patch(
        // Keys in the order serde_json's Map iterates them (sorted without `preserve_order`).
        &json!({"op": "props", "sel": "#d", "props": {"attributes": {"disabled": ""},
            "classList": {"add": ["n"], "toggle": ["k"]}, "dataset": {"someKey": 1}, "id": "d",
            "style": {"--gap": "2px", "color": null, "marginTop": "1px"}, "title": "t"}}),
        false,
        &mut told,
    )
    .expect("props");
    assert_eq!(disowned.len(), 2);
    let (i, d) = (el(&dom, "#i"), el(&dom, "#d"));
    assert_eq!(dom.value(&i), "b");
    assert_eq!(
        dom.outer_html(&i),
        "<input id=\"i\" value=\"a\" disabled=\"\">"
    );
    assert_eq!(
        dom.outer_html(&d),
        "<div id=\"d\" style=\"--gap: 2px; margin-top: 1px;\" class=\"n\" disabled=\"\" data-some-key=\"1\" title=\"t\">x</div>"
    );
    assert!(
        patch(
            &mut dom,
            json!({"op": "props", "sel": "#d", "props": {"dataset": {"a-b": "x"}}})
        )
        .is_err()
    );
    assert!(
        patch(
            &mut dom,
            json!({"op": "props", "sel": "#d", "props": {"classList": {"add": ["a b"]}}})
        )
        .is_err()
    );
    patch(
        &mut dom,
        json!({"op": "prop", "sel": "#d", "prop": "textContent", "value": null}),
    )
    .expect("text");
    assert_eq!(dom.text(&d), "");
}

#[test]
fn a_built_selector_skips_ignored_subtrees() {
    assert!(built_selector(" [tether-live=\"x\"]"));
    assert!(built_selector("[data-tether-presence]"));
    assert!(!built_selector("div [tether-live]"));
    let mut dom = page(
        "<div tether-ignore><p tether-id=\"t9\">a</p></div><p tether-id=\"t9\">b</p><div tether-ignore><i class=\"q\">c</i></div>",
    );
    patch(
        &mut dom,
        json!({"op": "text", "sel": "[tether-id=\"t9\"]", "text": "x"}),
    )
    .expect("text");
    patch(&mut dom, json!({"op": "text", "sel": ".q", "text": "y"})).expect("text");
    assert_eq!(
        body(&dom),
        "<div tether-ignore=\"\"><p tether-id=\"t9\">a</p></div><p tether-id=\"t9\">x</p><div tether-ignore=\"\"><i class=\"q\">y</i></div>"
    );
}

// ---- morph ----

#[test]
fn morph_keeps_typed_state_when_the_rendered_state_is_the_same() {
    let mut dom = page(
        "<form id=\"f\"><input id=\"a\" value=\"1\"><input id=\"b\" value=\"1\">\
         <input id=\"c\" type=\"checkbox\"><input id=\"d\" type=\"checkbox\"><textarea id=\"t\">x</textarea></form>",
    );
    for (sel, v) in [("#a", "typed"), ("#b", "typed"), ("#t", "typed")] {
        let e = el(&dom, sel);
        dom.set_value(&e, v);
    }
    for sel in ["#c", "#d"] {
        let e = el(&dom, sel);
        dom.set_checked(&e, true);
    }
    let a_before = el(&dom, "#a");
    patch(
        &mut dom,
        json!({"op": "morph", "sel": "#f", "html": "<input id=\"a\" value=\"1\"><input id=\"b\" value=\"2\">\
            <input id=\"c\" type=\"checkbox\"><input id=\"d\" type=\"checkbox\" value=\"v\"><textarea id=\"t\">x</textarea>"}),
    )
    .expect("morph");
    assert!(el(&dom, "#a") == a_before, "the input is the same node");
    assert_eq!(dom.value(&el(&dom, "#a")), "typed");
    assert_eq!(dom.value(&el(&dom, "#b")), "2");
    assert!(dom.checked(&el(&dom, "#c")));
    assert!(
        !dom.checked(&el(&dom, "#d")),
        "rendered state changed: reset"
    );
    assert_eq!(dom.value(&el(&dom, "#t")), "typed");
    patch(
        &mut dom,
        json!({"op": "morph", "sel": "#f", "html": "<textarea id=\"t\">y</textarea>"}),
    )
    .expect("morph");
    assert_eq!(dom.value(&el(&dom, "#t")), "y");
    assert_eq!(
        body(&dom),
        "<form id=\"f\"><textarea id=\"t\">y</textarea></form>"
    );
}

#[test]
fn morph_matches_by_id_and_keeps_attribute_order() {
    let mut dom = page(
        "<ul id=\"l\"><li id=\"a\" class=\"x\" title=\"t\">A</li><li id=\"b\">B</li><li id=\"c\">C</li></ul>",
    );
    let (a, c) = (el(&dom, "#a"), el(&dom, "#c"));
    patch(
        &mut dom,
        json!({"op": "morph", "sel": "#l", "html": "<li id=\"c\">C</li> <li title=\"t\" id=\"a\" lang=\"en\">A2</li><li id=\"n\">N</li>"}),
    )
    .expect("morph");
    assert_eq!(
        body(&dom),
        "<ul id=\"l\"><li id=\"c\">C</li> <li id=\"a\" title=\"t\" lang=\"en\">A2</li><li id=\"n\">N</li></ul>"
    );
    assert!(
        el(&dom, "#a") == a && el(&dom, "#c") == c,
        "matched by id, kept"
    );
}

#[test]
fn morph_leaves_a_nested_live_region_and_morphs_the_rest() {
    let mut dom = page(
        "<div id=\"o\" tether-live=\"outer\"><p>a</p><section tether-live=\"in\">old</section><section tether-live=\"gone\">g</section></div>",
    );
    patch(
        &mut dom,
        json!({"op": "morph", "sel": "#o", "html": "<p>b</p><section tether-live=\"in\">new</section><section tether-live=\"other\">o</section>"}),
    )
    .expect("morph");
    assert_eq!(
        body(&dom),
        "<div id=\"o\" tether-live=\"outer\"><p>b</p><section tether-live=\"in\">old</section><section tether-live=\"other\">o</section></div>"
    );
}

#[test]
fn morph_without_ids_ends_with_the_new_markup() {
    let mut dom = page("<div id=\"o\"><p>1</p><span>x</span><!--c--><p>2</p></div>");
    let html = "<span>y</span><p class=\"k\">1</p>t<table><tr><td>c</td></tr></table>";
    patch(&mut dom, json!({"op": "morph", "sel": "#o", "html": html})).expect("morph");
    assert_eq!(
        body(&dom),
        "<div id=\"o\"><span>y</span><p class=\"k\">1</p>t<table><tbody><tr><td>c</td></tr></tbody></table></div>"
    );
}

// ---- events ----

#[test]
fn handlers_parse_as_name_or_name_with_json() {
    assert_eq!(
        parse_handler(" save ").map(|h| (h.name, h.arg)),
        Ok(("save".to_string(), None))
    );
    assert_eq!(parse_handler("save()").map(|h| h.arg), Ok(None));
    assert_eq!(
        parse_handler("pick({\"id\": 3})").map(|h| h.arg),
        Ok(Some(json!({"id": 3})))
    );
    assert_eq!(
        parse_handler("pick (null)").map(|h| h.arg),
        Ok(Some(Value::Null))
    );
    assert!(parse_handler("a b").is_err());
    assert!(parse_handler("").is_err());
    assert!(parse_handler("pick({id: 3})").is_err());
    assert!(parse_handler("pick(1)x").is_err());
}

#[test]
fn tether_on_splits_pairs_outside_arguments() {
    let (pairs, bad) = parse_on("blur:save  my:event:h pick:p({\"a b\": [1, 2]}) :x y: z");
    assert_eq!(
        pairs,
        vec![
            ("blur".to_string(), "save".to_string()),
            ("my:event".to_string(), "h".to_string()),
            ("pick".to_string(), "p({\"a b\": [1, 2]})".to_string()),
        ]
    );
    assert_eq!(bad, vec![":x", "y:", "z"]);
}

#[test]
fn handlers_of_and_bound_element_follow_events_mjs() {
    let dom = page(
        "<div id=\"outer\" tether-click=\"outer\"><div tether-ignore><button id=\"in\" tether-click=\"no\">x</button></div>\
         <button id=\"b\" tether-on=\"click:second load:l focus:f\" tether-click=\"first\">b</button></div>",
    );
    let b = el(&dom, "#b");
    assert_eq!(
        dom.handlers_of(&b, "click", &is_gesture),
        vec!["first", "second"]
    );
    assert!(dom.handlers_of(&b, "load", &is_gesture).is_empty());
    assert_eq!(
        dom.handlers_of(&b, "load", &|t: &str| t == "load"),
        vec!["l"]
    );
    let bound = dom.bound_element(&el(&dom, "#in"), "click", true, &is_gesture);
    assert!(
        bound == Some(el(&dom, "#outer")),
        "an ignored handler is skipped, the one around it called"
    );
    assert!(
        dom.bound_element(&el(&dom, "#in"), "focus", false, &is_gesture)
            .is_none()
    );
    assert!(dom.bound_element(&b, "focus", false, &is_gesture) == Some(b.clone()));
    assert!(GESTURE_EVENTS.contains(&"drop") && !is_gesture("load") && !is_gesture("toggle"));
}

#[test]
fn handler_call_takes_its_own_argument_else_the_nearest_tether_arg() {
    let dom = page(
        "<div tether-arg=\"[1]\"><button id=\"a\">a</button><i tether-arg=\"{bad\"><b id=\"b\">b</b></i></div>",
    );
    let a = el(&dom, "#a");
    assert_eq!(
        dom.handler_call(&a, "go"),
        Ok(("go".to_string(), json!([1])))
    );
    assert_eq!(
        dom.handler_call(&a, "go(2)"),
        Ok(("go".to_string(), json!(2)))
    );
    assert!(dom.handler_call(&el(&dom, "#b"), "go").is_err());
    assert!(dom.argument_of(&el(&dom, "#b")).is_err());
    assert_eq!(dom.argument_of(&el(&dom, "div")), Ok(json!([1])));
    let plain = page("<p>x</p>");
    assert_eq!(plain.argument_of(&el(&plain, "p")), Ok(Value::Null));
}

#[test]
fn describe_builds_the_sender_and_stamps() {
    let long = "é".repeat(1200);
    let mut dom = page(&format!(
        "<section tether-commander=\"c\"><form id=\"f\"><input type=\"checkbox\" id=\"k\" name=\"k\" class=\"c\" data-a-b=\"1\">\
         <p id=\"long\">  {long}  </p></form></section><p tether-id=\"t1\">x</p>"
    ));
    let k = el(&dom, "#k");
    dom.set_checked(&k, true);
    let mut event = Map::new();
    event.insert("type".into(), json!("click"));
    event.insert("ctrlKey".into(), json!(true));
    event.insert("other".into(), json!(1));
    let sender = dom.describe(&k, &event, json!({"x": 1}));
    assert_eq!(
        sender,
        json!({"id": "k", "name": "k", "class": "c", "tether_id": "t2", "text": "", "value": "on", "checked": true,
            "dataset": {"aB": "1"}, "form": {"k": "on"}, "event": {"type": "click", "ctrlKey": true},
            "arg": {"x": 1}, "scope": "t3"})
    );
    let long_sender = dom.describe(&el(&dom, "#long"), &Map::new(), Value::Null);
    assert_eq!(
        long_sender["text"].as_str().map(|t| t.chars().count()),
        Some(1000)
    );
    assert_eq!(long_sender["scope"], json!("t3"));
    assert_eq!(truncate("ab😀c", 3), "ab😀");
}

#[test]
fn form_values_follow_form_elements() {
    let mut dom = page(
        "<form id=\"f\"><input name=\"t\" value=\"v\"><input name=\"p\" type=\"password\" value=\"s\">\
         <input name=\"file\" type=\"file\"><input id=\"byid\" value=\"i\"><input name=\"off\" disabled value=\"x\">\
         <input type=\"checkbox\" name=\"c1\" value=\"a\"><input type=\"checkbox\" name=\"c2\" checked>\
         <select name=\"m\" multiple><option selected>x</option><option>y</option><option selected>z</option></select>\
         <button name=\"go\" value=\"g\">go</button><input type=\"submit\" name=\"s\" value=\"s\"><input type=\"image\" name=\"img\">\
         <textarea name=\"ta\">text</textarea><fieldset name=\"fs\"></fieldset></form><input name=\"outside\" form=\"f\" value=\"o\">",
    );
    let f = el(&dom, "#f");
    let values = dom.form_values(&f, false);
    assert_eq!(
        Value::Object(values),
        json!({"t": "v", "byid": "i", "c2": "on", "m": ["x", "z"], "ta": "text", "outside": "o"})
    );
    let secret = dom.form_values(&f, true);
    assert_eq!(
        (secret.get("p"), secret.get("file")),
        (Some(&json!("s")), Some(&json!("")))
    );
    dom.set_attr(&f, "tether-include-passwords", Some(""));
    assert!(dom.form_values(&f, false).contains_key("p"));
    assert!(dom.form_of(&el(&dom, "[name=outside]")) == Some(f.clone()));
    assert_eq!(
        dom.typed_fields(&f).len(),
        6,
        "t, p, byid, off, the textarea and the input outside"
    );
    let buttons: Vec<String> = dom
        .submit_buttons(&f)
        .iter()
        .map(|b| dom.attr(b, "name").unwrap_or_default())
        .collect();
    assert_eq!(buttons, vec!["go", "s", "img"]);
}

#[test]
fn controls_and_navigation() {
    let dom = page(
        "<form id=\"f\" tether-submit=\"s\"><button id=\"b\">b</button></form><form id=\"g\"><button>b</button></form>\
         <div id=\"d\" tether-click=\"x\"></div><a id=\"a\" href=\"/\">a</a><a id=\"n\">n</a><button id=\"t\" type=\"button\"></button>",
    );
    assert!(dom.controls_of(&el(&dom, "#f"), &is_gesture) == vec![el(&dom, "#b")]);
    assert!(dom.controls_of(&el(&dom, "#g"), &is_gesture).is_empty());
    assert!(dom.controls_of(&el(&dom, "#d"), &is_gesture).is_empty());
    assert!(dom.controls_of(&el(&dom, "#t"), &is_gesture) == vec![el(&dom, "#t")]);
    assert!(dom.navigates(&el(&dom, "#a")) && !dom.navigates(&el(&dom, "#n")));
    assert!(dom.navigates(&el(&dom, "#b")) && !dom.navigates(&el(&dom, "#t")));
}

// ---- lists ----

#[test]
fn presence_lists_render_keyed_copies_of_their_template() {
    let mut dom = page(
        "<ul id=\"l\" data-tether-presence=\"room\" data-tether-fields=\"name\" data-tether-list=\"spec1\" \
         data-tether-entries='[{\"key\":\"a\",\"connections\":1,\"meta\":{\"name\":\"A\"}}]'>\
         <template><li data-field=\"name\"></li></template></ul>\
         <div tether-ignore><ul data-tether-presence=\"room\" data-tether-fields=\"name\" data-tether-list=\"spec2\"><template><li></li></template></ul></div>\
         <b data-tether-topic=\"room\"></b><b data-tether-topic=\"room\"></b><b data-tether-topic=\"x\"></b>",
    );
    assert_eq!(dom.presence_list_specs(), vec!["spec1"]);
    assert_eq!(dom.counter_topics(), vec!["room", "x"]);
    dom.show_rendered_lists();
    let l = el(&dom, "#l");
    let a = el(&dom, "[data-tether-key=a]");
    assert_eq!(dom.text(&a), "A");
    dom.render_presence_lists(&json!({"topic": "room", "fields": "name", "entries": [
        {"key": "b", "meta": {"name": {"n": 1}}}, {"key": "a", "meta": {"name": "A2"}}, {"key": 5}]}));
    assert_eq!(
        dom.inner_html(&l),
        "<template><li data-field=\"name\"></li></template><li data-field=\"name\" data-tether-key=\"b\">{\"n\":1}</li><li data-field=\"name\" data-tether-key=\"a\">A2</li>"
    );
    assert!(
        el(&dom, "[data-tether-key=a]") == a,
        "an entry shown keeps its element"
    );
    dom.render_presence_lists(&json!({"topic": "room", "fields": "other", "entries": []}));
    assert_eq!(dom.select_all("[data-tether-key]").map(|v| v.len()), Ok(2));
    dom.render_presence_lists(&json!({"topic": "room", "fields": "name", "entries": []}));
    assert_eq!(dom.select_all("[data-tether-key]").map(|v| v.len()), Ok(0));
}

#[test]
fn counters_show_their_count() {
    let mut dom = page(
        "<i data-tether-topic=\"t\" data-tether-count=\"users\">0</i><i data-tether-topic=\"t\" data-tether-count=\"connections\">0</i><i data-tether-topic=\"t\">0</i>",
    );
    dom.render_count(&json!({"topic": "t", "users": 2, "connections": 5}));
    assert_eq!(
        body(&dom),
        "<i data-tether-topic=\"t\" data-tether-count=\"users\">2</i><i data-tether-topic=\"t\" data-tether-count=\"connections\">5</i><i data-tether-topic=\"t\">0</i>"
    );
}

// ---- modal ----

#[test]
fn open_modal_builds_the_dialog_of_calls_mjs() {
    let mut dom = page("<p>x</p>");
    let dialog = dom.open_modal(&json!({"title": "T", "text": "<b>not markup</b>"}));
    assert_eq!(
        dom.outer_html(&dialog),
        "<dialog class=\"tether-modal\" open=\"\"><form method=\"dialog\"><h2>T</h2><div class=\"tether-modal-body\">&lt;b&gt;not markup&lt;/b&gt;</div><div class=\"tether-modal-buttons\"><button type=\"submit\" value=\"ok\">OK</button></div></form></dialog>"
    );
    let dialog = dom.open_modal(
        &json!({"html": "<input name=\"n\"><input type=\"checkbox\" name=\"c\" value=\"y\">",
        "buttons": ["yes", ["no", "No!"]], "fields": {"n": "typed", "c": ["y"]}}),
    );
    let form = el(&dom, "dialog:last-child form");
    assert_eq!(
        Value::Object(dom.form_values(&form, true)),
        json!({"n": "typed", "c": "y"})
    );
    assert!(dom.outer_html(&dialog).contains("<button type=\"submit\" value=\"yes\">yes</button><button type=\"submit\" value=\"no\">No!</button>"));
    assert!(dom.outer_html(&dialog).contains("<h2></h2>"));
}

#[test]
fn a_cssom_style_without_an_attribute_is_written_when_the_attributes_are_read() {
    let mut dom = page("<p id=\"p\">p</p><i id=\"i\" style=\"width: 1px;\">i</i>");
    let (p, i) = (el(&dom, "#p"), el(&dom, "#i"));
    dom.set_style(&p, "color", Some("red"));
    dom.set_attr(&p, "title", Some("t"));
    assert_eq!(
        dom.read_prop(&p, "style"),
        json!({"color": "red"}),
        "CSSOM reads the pending style"
    );
    assert_eq!(
        dom.attr(&p, "style").as_deref(),
        Some("color: red;"),
        "a read writes it"
    );
    dom.set_attr(&p, "lang", Some("en"));
    assert_eq!(
        dom.outer_html(&p),
        "<p id=\"p\" title=\"t\" style=\"color: red;\" lang=\"en\">p</p>"
    );
    dom.set_style(&i, "color", Some("red"));
    dom.set_attr(&i, "title", Some("t"));
    assert_eq!(
        dom.outer_html(&i),
        "<i id=\"i\" style=\"width: 1px; color: red;\" title=\"t\">i</i>"
    );
    // setAttribute("style") replaces a pending style.
    let mut dom = page("<b id=\"b\">b</b>");
    let b = el(&dom, "#b");
    dom.set_style(&b, "color", Some("red"));
    dom.set_attr(&b, "style", Some("width: 2px;"));
    assert_eq!(body(&dom), "<b id=\"b\" style=\"width: 2px;\">b</b>");
}

#[test]
fn typed_values_go_through_the_types_sanitization() {
    let mut dom =
        page("<input id=\"n\" type=\"number\"><input id=\"c\" type=\"color\"><input id=\"t\">");
    let (n, c, t) = (el(&dom, "#n"), el(&dom, "#c"), el(&dom, "#t"));
    dom.set_value(&n, "a");
    assert_eq!(dom.value(&n), "");
    dom.set_value(&n, "-1.5e3");
    assert_eq!(dom.value(&n), "-1.5e3");
    dom.set_value(&c, "#ABCDEF");
    assert_eq!(dom.value(&c), "#abcdef");
    dom.set_value(&t, "a\nb");
    assert_eq!(dom.value(&t), "ab");
}
