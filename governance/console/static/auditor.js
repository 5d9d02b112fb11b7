// The auditor's pages: verify.js checks each proof on load; "Verify again" re-reads the data
// island as the page holds it now, so an altered proof is checked, not the first verdict kept.
import { wireProofPage } from "/console/static/verify.js";

for (const button of document.querySelectorAll("[data-verify-again]")) {
  button.addEventListener("click", () => {
    for (const holder of document.querySelectorAll(`[data-proof="${button.dataset.verifyAgain}"]`)) {
      delete holder.dataset.proofState;
      wireProofPage(holder);
    }
  });
}
