"""What the Python services of the reference application share, as `reference-support` does
for the Rust ones: the routing and JSON conventions (`routes`), the clock at a fixed UTC offset
(`clock`), the component's environment (`environment`), the last-access item (`last_access`)
and the WASI HTTP handler that answers with JSON (`service`), exported through `http_p3`
(WASI 0.3) or `http_p2` (WASI 0.2) as the build's bindings say."""
