"""Semantic prompt classifier for switchyard.

Modules, one job each:

    build        build_model(): packaged all-MiniLM-L6-v2 weights -> ONNX fp32 + int8 dir
    bert_graph   the BERT sentence-encoder graph, written with onnx.helper (no torch)
    build_use    build_use_model(): packaged USE multilingual v3 weights -> int8 ONNX dir
    use_graph    the USE multilingual v3 (CNN + DAN) graph, written with onnx.helper
    tokenize     tokenizer.json with per-batch padding and truncation
    onnx_io      onnxruntime session + mapping onto the model's declared inputs
    encoder      Encoder: texts -> L2-normalised embeddings
    scoring      the decision rule's scores (language centring, centroid/nearest blend)
    conversation the stateless multi-turn rule
    decision     score vector -> Prediction (threshold, fallback, runner-up)
    calibrate    the thresholds derived from the labels' own examples (no config value)
    changes      what a new classifier changes for the old one's labels (reload checks)
    tune         threshold trade-off table from a labelled dev set (`switchyard tune`)
    labels       LabelClassifier (few-shot), load_classifier() factory
    sequence     SequenceClassifier (fine-tuned logits model + labels.json)
    evaluate     accuracy / per-label / out-of-scope reports, JSONL loaders
    text         language guess and follow-up anchors used by the rule
    neutral      the fixed neutral corpus the centring is computed from (cached per model)
    errors       the exception tree (ClassifierError and subclasses)

Nothing is imported here, so ``import classifier.labels`` does not pull in the build-time
dependencies (onnx, safetensors).
"""
