// Calls the BFF once the page has loaded and shows what the two backends answered.
// Same origin as the page (behind the ALB on ECS, the local run's single port), no libraries.
"use strict";

const DATE_LABEL = "Current Date (from Backend #1)";
const TIME_LABEL = "Current Time (from Backend #2)";

function show(id, text, state) {
  const element = document.getElementById(id);
  element.textContent = text;
  element.dataset.state = state;
}

function showError(message) {
  const element = document.getElementById("error");
  element.textContent = message;
  element.hidden = false;
}

async function load() {
  document.getElementById("error").hidden = true;
  show("date", `${DATE_LABEL} loading...`, "loading");
  show("time", `${TIME_LABEL} loading...`, "loading");
  try {
    const response = await fetch("/api/", { headers: { Accept: "application/json" } });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      // Not JSON: reported below with the status.
    }
    if (!response.ok || !data || typeof data.currentDate !== "string") {
      const detail = data && data.error ? `: ${data.error}` : "";
      throw new Error(`the BFF answered HTTP ${response.status}${detail}`);
    }
    show("date", `${DATE_LABEL} ${data.currentDate}`, "ok");
    show("time", `${TIME_LABEL} ${data.currentTime}`, "ok");
  } catch (error) {
    console.log("Unable to access BFF.", error);
    show("date", `${DATE_LABEL} unavailable`, "error");
    show("time", `${TIME_LABEL} unavailable`, "error");
    showError(`Unable to access BFF (${error.message}).`);
  }
}

window.addEventListener("load", () => {
  document.getElementById("reload").addEventListener("click", load);
  load();
});
