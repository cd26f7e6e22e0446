"""mergekit's other tools on this engine: extracting a LoRA adapter from a fine-tune."""
