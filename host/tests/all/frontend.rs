//! The page, rendered by a real browser (Debian's chromium, headless) against the real host.

use crate::support;

use support::browser::rendered_dom;
use support::{TestHost, free_port, shared_application};

/// The text of the element with `id`.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    dom[open..close].to_string()
}

#[test]
fn the_page_shows_the_date_and_time_from_the_backends() {
    let front = shared_application().front;
    let dom = rendered_dom(&format!("http://127.0.0.1:{front}/"));
    let date = text_of(&dom, "date");
    let time = text_of(&dom, "time");
    let date_value = date
        .strip_prefix("Current Date (from Backend #1) ")
        .unwrap_or_else(|| panic!("{date:?}"));
    let time_value = time
        .strip_prefix("Current Time (from Backend #2) ")
        .unwrap_or_else(|| panic!("{time:?}"));
    assert!(
        date_value.len() == 10 && date_value.as_bytes()[4] == b'/',
        "{date_value:?}"
    );
    assert!(
        time_value.len() == 8 && time_value.as_bytes()[2] == b':',
        "{time_value:?}"
    );
    assert!(dom.contains("id=\"error\" role=\"alert\" hidden"), "{dom}");
}

#[test]
fn the_page_shows_an_error_when_the_bff_fails() {
    let down = format!("http://127.0.0.1:{}", free_port());
    let host = TestHost::application().backend_1_url(&down).start();
    let front = host.port();
    let dom = rendered_dom(&format!("http://127.0.0.1:{front}/"));
    assert_eq!(
        text_of(&dom, "date"),
        "Current Date (from Backend #1) unavailable"
    );
    let error = text_of(&dom, "error");
    assert!(
        error.starts_with("Unable to access BFF (the BFF answered HTTP 502"),
        "{error}"
    );
}
