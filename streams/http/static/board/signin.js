/* Signing in: a person's user name and password, or the wall screen's read-only token. */
import { $, S, auth, hideError, setConn, showError } from "./state.js";
import { stopStream } from "./stream.js";
import { hideSilences } from "./silences.js";

// What a sign-in starts and a sign-out clears: the board's own, given by main.js when it loads (this module
// does not import the entry point that imports it).
const board = { start: () => {}, reset: () => {} };
export function useBoard(start, reset) {
  board.start = start;
  board.reset = reset;
}

export function showSignIn(message, wallForm) {
  stopStream();
  setConn("offline");
  $("#main").hidden = true;
  $("#signout").hidden = true;
  S.paintWho($("#who"), null);
  $("#signin").hidden = false;
  showForm(Boolean(wallForm));
  $("#password").value = "";
  $("#token").value = "";
  hideSilences();
  if (message) showError(message);
  if (wallForm) $("#token").focus();
  else ($("#user").value ? $("#password") : $("#user")).focus();
}

/** The person's form (user name, password) or the wall screen's (its read-only token). */
export function showForm(wall) {
  $("#signin-form").hidden = wall;
  $("#wall-form").hidden = !wall;
}

/** Who may use this board: anyone whose role watches it (the centre and the leadership the whole district,
 * a community workstation its community); through a token, only the wall screen's read-only one. */
function checkBoard(district) {
  if (auth.token && !district.read_only) throw new S.ApiError(403, S.t("notWall"), { error: S.t("notWall") });
  if (!district.read_only && !(district.capabilities || []).includes("watch_board")) {
    throw new S.ApiError(403, S.t("noBoard"), { error: S.t("noBoard") });
  }
  // The wall screen reads and never acts: its board shows no action at all.
  document.body.toggleAttribute("data-read-only", Boolean(district.read_only));
  return district;
}

/** `how` gives the district JSON: a sign-in, the wall's token, or (on load) whoever the cookie names;
 * `failed` the message for its error; `wallForm`: show the token's form again on failure. */
export async function signIn(how, failed, wallForm) {
  try {
    const district = checkBoard(await how());
    hideError();
    board.start(district);
  } catch (error) {
    const transient = error instanceof S.ApiError && (error.status === 0 || error.status >= 500);
    if (transient && how === resume) {
      // The server is restarting: a remembered sign-in waits for it instead of asking again.
      showError(S.describeError(error));
      setConn("reconnecting");
      setTimeout(() => signIn(resume, failed, wallForm), 3000);
      return;
    }
    // Just signed in, but not for this board: sign out again (a session from another page stays).
    if (auth.active && how !== resume) await auth.logout().catch(() => {});
    auth.forget();
    showSignIn(failed(error), wallForm);
  }
}

export const resume = () => auth.resume();

/** A 401 while working: the session ended (idle expiry, signed out elsewhere, disabled). */
export function sessionEnded(error) {
  const wall = Boolean(auth.token);   // the wall's token was refused (changed): its own form again
  auth.forget();
  board.reset();
  showSignIn(wall ? `${S.t("badToken")} (${S.describeError(error)})` : S.sessionEnded(error), wall);
}
