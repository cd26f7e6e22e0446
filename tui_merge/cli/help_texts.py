"""The help texts of ``tui-merge --help`` and of each command: what it does, and examples that fit 80 columns
(``tests/test_help_width.py``) and run (``tests/test_docs_examples.py`` runs those README and docs show)."""

from __future__ import annotations

DESCRIPTION = """\
Merge the weights of fine-tuned language models: see whether models can be
merged before spending an hour on it, merge them from a keyboard-only wizard or
a replayable config, and verify the result. Models are local folders or hub ids
(org/name): one the local Hugging Face cache lacks is inspected from the Hub
without its weights, which come only with run --download."""

EXAMPLES = """\
examples:
  tui-merge                               the wizard (plain when TERM is dumb)
  tui-merge plain ./base ./chat           the wizard as prompts, one at a time
  tui-merge demo                          the wizard on tiny sample models
  tui-merge inspect ./base ./chat         can these two be merged?
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge run merge.yaml ./merged       merge headlessly from a config
  tui-merge verify ./merged               is the merged folder sound?
  tui-merge methods ties                  what ties does and its parameters
  tui-merge import-recipe README.md -o m.yaml  a model card's mergekit recipe
  tui-merge circuit ./base ./best ./second ./out   Circuit-Merge's arguments
  tui-merge blockmerge --model_path1 ./a --model_path2 ./b \\
      --output_model_path ./out --gradient_values '[1, 0.5, 0]'
  tui-merge legacy ./out --merge ./a --merge ./b --base-model ./base
  tui-merge bakllama layers.yaml ./out     a bakllama layer-stacking config
"""

RUN_EXAMPLES = """\
examples:
  tui-merge run merge.yaml ./merged       merge (mergekit's argument order)
  tui-merge run merge.yaml -o ./merged    the same
  tui-merge run merge.yaml --dry-run      validate, show the plan, write nothing
  nohup tui-merge run merge.yaml ./merged > merge.log 2>&1 &
  tui-merge run merge.yaml ./merged --resume
      continue after Ctrl-C, kill or a lost SSH session
  tui-merge run merge.yaml ./merged --download
      fetch from the Hub only the weight files the merge reads

Hub ids the cache lacks are planned from the Hub's metadata and headers; the
weights are fetched only with --download (into the Hugging Face cache, checked
against the Hub's sha256). HF_HUB_OFFLINE=1 keeps every lookup in the cache.
The config speaks mergekit's YAML dialect; options of our own go under
tui_merge: (vocab, shard_size, device, seed, copy_tokenizer). Vocabularies of
different sizes need tui_merge: {vocab: truncate | pad | union} or mergekit's
tokenizer_source: union | base | model:PATH. Output is written to OUT.partial
and renamed to OUT only when complete. Ctrl-C, SIGTERM or SIGHUP stop after the
current tensor and keep the finished shards for --resume (a second Ctrl-C
stops at once).
exit status: 0 merged, 1 the merge failed, 2 bad input, 130 interrupted.
"""

TEMPLATE_EXAMPLES = """\
examples:
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge template ./base ./chat ./code --method ties --base ./base \\
      -o ties.yaml
"""

INSPECT_EXAMPLES = """\
examples:
  tui-merge inspect ./mistral-base ./mistral-chat ./mistral-code
  tui-merge inspect org/model-a org/model-b --base org/model-b
  tui-merge inspect ./a ./b --json > report.json
  tui-merge inspect --layers ./base ./chat ./code   what each fine-tune changed

exit status: 0 mergeable, 1 an error-level finding, 2 bad input (missing
folder, damaged weights, unreadable config).
"""

VERIFY_EXAMPLES = """\
examples:
  tui-merge verify ./merged           structural checks, one tensor at a time
  tui-merge verify ./merged --probe   and perplexity beside the parents'
  tui-merge run merge.yaml ./merged --verify

exit status: 0 every check passed, 1 a check failed, 2 bad input.
"""
BLOCKMERGE_EXAMPLES = """\
examples:
  tui-merge blockmerge --model_path1 ./base --model_path2 ./chat \\
      --output_model_path ./merged --gradient_values '[1.0, 0.5, 0.0]' \\
      --max_shard_size 2000MiB
  tui-merge blockmerge --model_path1 ./a --model_path2 ./b \\
      --gradient_values '[0.3]' --print-yaml > merge.yaml

A gradient value is model 2's share: 1.0 is all of model 2, 0.0 all of model 1.
The values are spread evenly over the layers, first to last, and each layer
takes the linear interpolation at its depth (the original script interpolated
over the position in its tensor list; here every tensor of a layer, attention
and MLP alike, gets the layer's ratio). Embeddings take the first value, the
final norm and head the last. The output keeps model 1's vocabulary (model 2's
rows cut or padded with its mean row, with a warning) and tokenizer. The config
it runs is saved in the output as tui_merge_config.yaml; --print-yaml prints it.
exit status: 0 merged, 1 the merge failed, 2 bad input, 130 interrupted.
"""

COMPARE_EXAMPLES = """\
examples:
  tui-merge compare ./merged ./base ./chat     perplexity on the built-in text
  tui-merge compare ./merged ./chat --text notes.txt \\
      --prompt "The capital of France is"
  tui-merge compare ./merged ./base --json > scores.json

Perplexity is exp of the mean next-token loss, as transformers computes it
with labels = input_ids on each model's own tokenizer; a text longer than a
model's context is scored in consecutive windows of that length. The
built-in text is public domain (the opening of the Declaration of
Independence and the Gettysburg Address). Models load one at a time, on
CUDA when torch sees a GPU, else the CPU; models without a language-model
head are skipped, and said so.
"""

SWEEP_EXAMPLES = """\
examples:
  tui-merge sweep merge.yaml --vary t=0.2,0.5,0.8 -o best.yaml
  tui-merge sweep ties.yaml --vary models[0].density=0.3,0.5,0.7 \\
      --vary lambda=0.8,1
  tui-merge sweep slerp.yaml --vary "t=[0,0.5,1],[1,0.5,0],0.5" \\
      --text notes.txt --keep

NAME is a global parameter (t), parameters.NAME, or models[I].NAME; values
are YAML, so a value may be a gradient. Every candidate is validated before
the first merge; each is merged into CONFIG.sweep/ID/candidate-N (removed
once scored, unless --keep; ID names this config, --vary and text) and
scored like tui-merge compare. An interrupted sweep run again continues
where it stopped.
"""

SEARCH_EXAMPLES = """\
examples:
  tui-merge search slerp.yaml --space t=0..1 --trials 20 -o best.yaml
  tui-merge search ties.yaml --space models[1].density=0.2..0.9 \\
      --space "models[1].weight=0.5..1.5" --sampler cmaes
  tui-merge search slerp.yaml --space t=0..1@layers \\
      --objective perplexity:notes.txt --objective "max:command:./score.sh"
  tui-merge search slerp.yaml --space t=0..1@4 --ray 10.0.0.5:6379

SPEC is LO..HI, V1,V2,..., LO..HI@layers (a value per layer) or LO..HI@K
(a gradient of K anchors). An objective is perplexity[:FILE] or
command:COMMAND (its last line is the number; $MERGED is the merge, $RECIPE
its recipe), lower is better unless max: is in front. The study (default
RECIPE.search.db) keeps every trial: the same command run again resumes, a
trial a killed search left is redone, finished ones are never merged again.
Each trial's recipe is saved in RECIPE.search.trials/STUDY/trial-N.yaml
(STUDY: the study's name, so studies never share a file) and replays with
tui-merge run.
"""

LEGACY_EXAMPLES = """\
examples:
  tui-merge legacy ./merged --merge ./chat --merge ./code --base-model ./base \\
      --density 0.5 --weight 0.6 --weight 0.4
  tui-merge legacy ./merged --method slerp --merge ./a --base-model ./b \\
      --weight 0.3
  tui-merge legacy ./merged --merge ./a --merge ./b --method linear \\
      --print-yaml > merge.yaml

mergekit-legacy's rules: one --weight or --density applies to every model,
several give one per model (--merge order, then a base model that is not
merged); for slerp the single --weight is t; --naive-count elects signs by
count; bfloat16 unless --no-bf16; the CPU unless --cuda.
"""

BAKLLAMA_EXAMPLES = """\
examples:
  tui-merge bakllama layers.yaml ./merged
  tui-merge bakllama layers.yaml --print-yaml > merge.yaml

layers.yaml, as bakllama reads it:
  layer_slices:
    - {model: ./base, start: 0, end: 16}
    - {model: ./chat, start: 8, end: 24, scale: 0.9}
  embedding_source: ./base     (default: the first slice's model)
  lm_head_source: ./chat       (default: the last slice's model)
Ranges are half-open; scale multiplies that slice's MLP down-projections.
"""

CIRCUIT_EXAMPLES = """\
examples:
  tui-merge circuit ./base ./best-variant ./second-variant ./merged
  tui-merge circuit ./base ./a ./b ./merged --temperature 0.5 --seed 7
  tui-merge circuit --config circuit.yaml
  tui-merge circuit --config circuit.yaml --print-yaml > merge.yaml
  tui-merge circuit --test      self-check of the method on synthetic tensors

Variants are listed in priority order, highest first: a higher-priority
variant wins sign conflicts and is pruned least. A --config file may hold:
  base_model: ./base
  variant_models: [./best-variant, ./second-variant]
  output_dir: ./merged
  parameters: {temperature: 0.0, base_droprate: 0.5, epsilon: 0.1,
               meaningful_change_threshold: 2.0e-6, skip_rescaling: false,
               seed: 0}
Flags and positional models given on the command line override the file.
exit status: 0 merged (or --test passed), 1 the merge or a self-check
failed, 2 bad input, 130 interrupted.
"""

IMPORT_EXAMPLES = """\
examples:
  tui-merge import-recipe ./some-merge/README.md -o merge.yaml
  tui-merge import-recipe card.md -o m.yaml && tui-merge run m.yaml ./merged
  tui-merge import-recipe card.md --print-yaml   (report on stderr)

The recipe is the first fenced yaml block of the card that has merge_method.
Its model ids stay as they are (hub ids resolve against the local Hugging Face
cache when the merge runs); each is looked up now and the missing ones are
listed with the command that downloads them.
exit status: 0 written and every model is here, 1 written but models are
missing, 2 bad input (no recipe in the card, an invalid recipe, FILE exists).
"""

DOCTOR_EXAMPLES = """\
examples:
  tui-merge doctor                  the stack, CUDA, the cache and the terminal
  tui-merge doctor --json           the same facts for a script
"""

DEMO_EXAMPLES = """\
examples:
  tui-merge demo                    build the sample models once, open them
  tui-merge demo --dir /tmp/demo    keep the sample models somewhere else
"""

EXTRACT_LORA_EXAMPLES = """\
examples:
  tui-merge extract-lora --model ./chat --base ./base --max-rank 32 ./lora
  tui-merge extract-lora --model ./chat --base ./base --max-rank 256 \\
      --relative-threshold 0.05 ./lora   (a rank per module, up to 256)
  tui-merge extract-lora --model ./chat --base ./base -i self_attn ./lora
  tui-merge run apply.yaml ./again
      (apply.yaml: merge_method: passthrough, models: [{model: ./base+./lora}])

mergekit-extract-lora's command line works with tui-merge extract-lora in its
place (--base-model, --out-path, --save-module, -i, -e, --sv-epsilon). Each line
says a module's rank and how much of its difference the rank captures.
"""

MOE_EXAMPLES = """\
examples:
  tui-merge moe moe.yaml ./moe
  tui-merge moe mergekit_moe_config.yml ./moe --device cpu --out-shard-size 2GB

moe.yaml is mergekit-moe's config, unchanged:
  base_model: ./base
  gate_mode: cheap_embed        # hidden, cheap_embed, random or uniform_random
  experts_per_token: 2
  experts:
    - source_model: ./chat
      positive_prompts: ["Hello, how are you?"]
    - source_model: ./code
      positive_prompts: ["def fibonacci(n):"]
"""
