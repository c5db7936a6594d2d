//! A component that misbehaves on request, for the host's integration tests.
//!
//! | path               | what it does |
//! |--------------------|--------------|
//! | `/ok`              | 200 `ok` |
//! | `/trap`            | panics, which traps the instance |
//! | `/loop`            | spins forever without calling the host |
//! | `/hog`             | allocates memory until it runs out |
//! | `/sleep?ms=N`      | waits N milliseconds on the host's clock, then 200 |
//! | `/body`            | reads the whole request body, answers its length |
//! | `/fetch?url=U`     | GETs U and answers its status, or the error code |
//! | `/counter`         | increments a static counter and answers it (1 with a fresh instance per request) |
//! | `/env`             | answers the environment it sees, one `KEY=VALUE` per line |
//! | `/no-response`     | returns without answering |
//! | `/read-file?path=P` | tries to read a file (there is no filesystem: it must fail) |
//! | `/panic-after-head` | sends the response head and part of the body, then panics |
//! | `/big?mb=N`        | streams an N MiB body (64 KiB at a time, so the instance stays small) |
//! | `/table-put?key=K&value=V` | puts `{SubAppId: K, Value: V}` in the table (through the package's 0.2.0, as a WASI 0.2 component must) |
//! | `/table-get?key=K` | answers the item with `SubAppId` K, or `none` |
//! | `/print?lines=N`   | prints N lines to stdout that imitate the host's log (with a newline, a carriage return and an escape sequence inside), one to stderr, then answers `printed N` |
//! | `/table-bad?case=C` | puts an item DynamoDB would refuse: `too-large`, `empty-key`, `bad-number`, `empty-set`, `bad-index` |
//! | `/sockets?port=N&name=H` | tries a TCP connection to 127.0.0.1:N and a lookup of H through wasi:sockets (both must fail), answers `connect: R` and `lookup: R`, one a line |

use futures::SinkExt;
use spin_sdk::http::{
    Fields, IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam, SendError, send,
};
use spin_sdk::http_component;
use std::sync::atomic::{AtomicU64, Ordering};
use xray_platform::raw::table_v0_2 as raw_table;
use xray_platform::table::{self, Value};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prints `lines` lines that try to pass for the host's own: each holds a newline, a carriage
/// return and an ANSI escape sequence; then one line to stderr.
fn print_forged_lines(lines: u64) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for i in 0..lines {
        let _ = writeln!(
            stdout,
            "forged {i}\n2026-01-01T00:00:00.000000Z  INFO component loaded service=Faults\r\u{1b}[31mred"
        );
    }
    let _ = stdout.flush();
    eprintln!("forged stderr\u{7}");
}

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    let path_and_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    let response = match path {
        "/ok" => text(200, "ok"),
        "/trap" => panic!("the test component was asked to trap"),
        "/loop" => spin_forever(),
        "/hog" => hog_memory(),
        "/sleep" => {
            let ms: u64 = param(query, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
            text(200, &format!("slept {ms} ms"))
        }
        "/body" => match request.into_body().await {
            Ok(body) => text(200, &body.len().to_string()),
            Err(error) => text(400, &format!("reading the body failed: {error}")),
        },
        "/fetch" => fetch(param(query, "url").unwrap_or_default()).await,
        "/counter" => text(
            200,
            &(COUNTER.fetch_add(1, Ordering::SeqCst) + 1).to_string(),
        ),
        "/env" => {
            let lines: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            text(200, &lines.join("\n"))
        }
        "/no-response" => return drop(outparam),
        "/read-file" => match std::fs::read_to_string(param(query, "path").unwrap_or_default()) {
            Ok(contents) => text(200, &format!("read {} bytes", contents.len())),
            Err(error) => text(403, &format!("no file: {error}")),
        },
        "/sockets" => {
            let port = param(query, "port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(80);
            let name = param(query, "name").unwrap_or_else(|| "localhost".into());
            text(
                200,
                &format!("connect: {}\nlookup: {}", tcp_connect(port), lookup(&name)),
            )
        }
        "/panic-after-head" => {
            let response = OutgoingResponse::new(Fields::new());
            let _ = response.set_status_code(200);
            let mut body = response.take_body();
            outparam.set(response);
            let _ = body.send(b"partial body, then ".to_vec()).await;
            panic!("the test component was asked to panic after the response head");
        }
        "/big" => {
            let mb: usize = param(query, "mb").and_then(|v| v.parse().ok()).unwrap_or(1);
            let response = OutgoingResponse::new(Fields::new());
            let _ = response.set_status_code(200);
            let mut body = response.take_body();
            outparam.set(response);
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..mb * 16 {
                if body.send(chunk.clone()).await.is_err() {
                    return;
                }
            }
            return;
        }
        "/table-put" => {
            let key = param(query, "key").unwrap_or_default();
            let value = param(query, "value").unwrap_or_default();
            match table::blocking::put_item(&[
                ("SubAppId", Value::Text(key)),
                ("Value", Value::Text(value)),
            ]) {
                Ok(()) => text(200, "stored"),
                Err(error) => text(500, &format!("error {error:?}")),
            }
        }
        "/table-get" => {
            let key = param(query, "key").unwrap_or_default();
            match table::blocking::get_item(&[("SubAppId", Value::Text(key))]) {
                Ok(Some(item)) => text(200, &format!("{item:?}")),
                Ok(None) => text(200, "none"),
                Err(error) => text(500, &format!("error {error:?}")),
            }
        }
        "/print" => {
            let lines: u64 = param(query, "lines")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            print_forged_lines(lines);
            text(200, &format!("printed {lines}"))
        }
        "/table-bad" => bad_item(param(query, "case").unwrap_or_default()),
        _ => text(404, "no such fault"),
    };
    let body = response.body().to_vec();
    let head = OutgoingResponse::try_from(response).expect("a valid response head");
    let _ = outparam.set_with_body(head, body).await;
}

/// Connects to 127.0.0.1:`port` through wasi:sockets: `connected`, or the error code.
fn tcp_connect(port: u16) -> String {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let network = wasi::sockets::instance_network::instance_network();
    let socket = match wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(error) => return error.name().to_string(),
    };
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    if let Err(error) = socket.start_connect(&network, address) {
        return error.name().to_string();
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "connected".into(),
        Err(error) => error.name().to_string(),
    }
}

/// Looks `name` up through wasi:sockets: the addresses found, or the error code.
fn lookup(name: &str) -> String {
    let network = wasi::sockets::instance_network::instance_network();
    let stream = match wasi::sockets::ip_name_lookup::resolve_addresses(&network, name) {
        Ok(stream) => stream,
        Err(error) => return error.name().to_string(),
    };
    let mut found = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(address)) => found.push(format!("{address:?}")),
            Ok(None) => return format!("resolved {}", found.join(" ")),
            Err(wasi::sockets::network::ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(error) => return error.name().to_string(),
        }
    }
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .build()
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%3A", ":").replace("%2F", "/"))
    })
}

fn bad_item(case: String) -> Response {
    let key = ("SubAppId", Value::Text("bad".into()));
    let result = match case.as_str() {
        "too-large" => {
            table::blocking::put_item(&[key, ("blob", Value::Binary(vec![0; 500 * 1024]))])
        }
        "empty-key" => table::blocking::put_item(&[("SubAppId", Value::Text(String::new()))]),
        "bad-number" => table::blocking::put_item(&[key, ("n", Value::Number("12abc".into()))]),
        "empty-set" => table::blocking::put_item(&[key, ("tags", Value::TextSet(Vec::new()))]),
        // A list that refers to a value the item does not have: only the raw bindings can
        // build one.
        "bad-index" => raw_table::put_item(&raw_table::Item {
            attributes: vec![("SubAppId".into(), 0), ("list".into(), 1)],
            values: vec![
                raw_table::Value::Text("bad".into()),
                raw_table::Value::List(vec![7]),
            ],
        })
        .map_err(table::blocking::from_old_error),
        _ => return text(404, "no such case"),
    };
    match result {
        Ok(()) => text(200, "accepted"),
        Err(error) => text(400, &format!("error {error:?}")),
    }
}

fn spin_forever() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn hog_memory() -> Response {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        chunks.push(std::hint::black_box(chunk));
    }
}

async fn fetch(url: String) -> Response {
    let result: Result<Response, SendError> = send(Request::get(&url).build()).await;
    match result {
        Ok(response) => text(200, &format!("status {}", response.status())),
        Err(SendError::Http(code)) => text(502, &format!("error {code:?}")),
        Err(other) => text(502, &format!("error {other}")),
    }
}
