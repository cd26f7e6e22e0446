"""mergekit's other tools on this engine: extracting a LoRA adapter (``extract_lora``), building a mixture of
experts (``moe_config``, ``moe_gates``, ``moe``), and multi-stage recipes (``stages``)."""
