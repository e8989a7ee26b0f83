// Code lookup: the "verify in the browser" check of the verdict's inclusion proofs.
import { wireInclusionButton } from "./proof.js";

wireInclusionButton("verify-proofs", "proof-data", "proof-summary");
