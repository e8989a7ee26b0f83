// Ledger explorer: browser checks of an entry's inclusion proof and of the consistency
// proof between two checkpoints.
import { checkEmbeddedConsistency, cryptoAvailable, embeddedJson, wireInclusionButton } from "./proof.js";

wireInclusionButton("verify-proofs", "proof-data", "proof-summary");

const button = document.getElementById("verify-consistency");
const data = embeddedJson("consistency-data");
const result = document.getElementById("consistency-result");
if (button && data && result) {
  button.addEventListener("click", async () => {
    if (!cryptoAvailable()) {
      result.textContent = button.dataset.unsupported;
      result.dataset.result = "failed";
      return;
    }
    button.disabled = true;
    result.textContent = button.dataset.checking;
    result.dataset.result = "checking";
    try {
      await checkEmbeddedConsistency(data);
      result.textContent = button.dataset.verified;
      result.dataset.result = "verified";
      result.title = "";
    } catch (error) {
      result.textContent = button.dataset.failed;
      result.dataset.result = "failed";
      result.title = error.message;
    }
    button.disabled = false;
  });
}
