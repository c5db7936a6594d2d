//! The item both backends write on every request, as the original wrote it to DynamoDB:
//! `{SubAppId: "<service>", LastAccessed: "<epoch seconds>"}`.

use xray_platform::table::{self, Value};

/// Records that `sub_app_id` was accessed now. A failure is logged in one line and otherwise
/// ignored: the backend answers anyway, as the original did. The instance serves its other
/// requests while this one waits for the table.
///
/// `RECORD_LAST_ACCESS=off` in the component's environment skips the write (a deployment with
/// no table, or a benchmark that leaves DynamoDB out on every side alike).
pub async fn record_last_access(sub_app_id: &str) {
    if std::env::var("RECORD_LAST_ACCESS").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let item = [
        ("SubAppId", Value::Text(sub_app_id.to_string())),
        ("LastAccessed", Value::Text(now.to_string())),
    ];
    if let Err(error) = table::put_item(&item).await {
        eprintln!("{sub_app_id}: could not record the last access: {error:?}");
    }
}
