"""Pure parts of the decision rule: conversation combination, decide(), language guess."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import classifier.scoring
from classifier.conversation import TurnPolicy, combine_turns
from classifier.decision import decide
from classifier.labels import ENCODERS
from classifier.scoring import Centering, ExampleIndex
from classifier.text import guess_language

POLICY = TurnPolicy(switch_margin=0.1, decay=0.5, window=3, follow_up_weight=0.0)
TH = 0.3


def test_confident_last_message_decides_alone() -> None:
    scores = np.array([[0.9, 0.1], [0.1, 0.45]])
    np.testing.assert_array_equal(combine_turns(scores, [False, False], TH, POLICY), scores[-1])


def test_follow_up_keeps_previous_topic() -> None:
    scores = np.array([[0.6, 0.1], [0.05, 0.1]])
    combined = combine_turns(scores, [False, True], TH, POLICY)
    np.testing.assert_allclose(combined, scores[0])  # follow-up weight 0: only the first counts


def test_unmatched_last_message_does_not_leave_the_topic_alone() -> None:
    # "and for how many days?" matches no label: the conversation's topic carries it.
    scores = np.array([[0.6, 0.1], [0.05, 0.1]])
    combined = combine_turns(scores, [False, False], TH, POLICY)
    np.testing.assert_allclose(combined, (0.5 * scores[0] + scores[1]) / 1.5)
    assert combined.argmax() == 0


def test_weak_last_message_is_combined_with_recency_weights() -> None:
    scores = np.array([[0.0, 0.9], [0.6, 0.1], [0.32, 0.3]])
    combined = combine_turns(scores, [False, False, False], TH, POLICY)
    expected = (0.25 * scores[0] + 0.5 * scores[1] + 1.0 * scores[2]) / 1.75
    np.testing.assert_allclose(combined, expected)


def test_window_limits_history() -> None:
    scores = np.array([[0.0, 5.0], [0.6, 0.1], [0.0, 0.0], [0.0, 0.0]])
    combined = combine_turns(scores, [False, False, True, True], TH, POLICY)
    assert combined[0] > combined[1]  # the first message fell out of the 3-message window


def test_combine_rejects_mismatched_flags() -> None:
    with pytest.raises(ValueError):
        combine_turns(np.zeros((2, 3)), [True], TH, POLICY)


def test_invalid_policy() -> None:
    with pytest.raises(ValueError):
        TurnPolicy(decay=0.0)


def test_decide() -> None:
    names = ["a", "b", "c"]
    p = decide(np.array([0.2, 0.5, 0.4]), names, 0.3, "other")
    assert (p.label, p.runner_up) == ("b", "c")
    assert p.score == pytest.approx(0.5) and p.runner_up_score == pytest.approx(0.4)
    low = decide(np.array([0.2, 0.25, 0.1]), names, 0.3, "other")
    assert (low.label, low.runner_up, low.score) == ("other", "b", pytest.approx(0.25))
    single = decide(np.array([0.9]), ["a"], 0.3, "other")
    assert (single.label, single.runner_up) == ("a", None)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("How do I cancel my subscription?", "en"),
        ("Comment résilier mon abonnement ?", "fr"),
        ("d'accord, vas-y", "fr"),
        ("ok", None),
        ("SELECT * FROM t", None),
        ("¿Cómo puedo cambiar la contraseña de mi cuenta?", "es"),
        ("Wie kann ich meinen Vertrag kündigen?", "de"),
        ("Come posso pagare la rata della polizza?", "it"),
        ("Quero mudar a data do meu voo", "pt"),
        ("Hoe kan ik mijn wachtwoord wijzigen?", "nl"),
        ("Jak mogę zmienić hasło?", "pl"),
        ("Şifremi nasıl değiştirebilirim?", "tr"),  # noqa: RUF001 - Turkish dotless i
        ("Как изменить пароль?", "ru"),
        ("如何更改我的密码", "zh"),
        ("パスワードを変更するにはどうすればいいですか", "ja"),
        ("비밀번호를 어떻게 변경하나요?", "ko"),
        ("كيف أغير كلمة المرور؟", "ar"),
        ("ฉันจะเปลี่ยนรหัสผ่านได้อย่างไร", "th"),
        # English and French win their ties with the other languages: their words are
        # the ones this rule was built on ("in" is English, Italian, German and Dutch).
        ("login in progress", "en"),
        ("Le vol a-t-il décollé ?", "fr"),
    ],
)
def test_guess_language(text: str, lang: str | None) -> None:
    assert guess_language(text) == lang


def test_the_centroid_weight_blends_centroid_and_nearest() -> None:
    # Two examples of one label, at right angles; the query is the first one.
    examples = np.eye(3, dtype=np.float32)[:2]
    none = Centering(overall=np.zeros(3, dtype=np.float32), by_language={})
    query = examples[:1]
    centroid, nearest = 1 / np.sqrt(2), 1.0
    for weight in (0.5, 0.7):
        index = ExampleIndex(examples, [None, None], [0, 0], 1, none, weight)
        expected = weight * centroid + (1 - weight) * nearest
        assert index.scores(query, [None])[0, 0] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="centroid_weight"):
        ExampleIndex(examples, [None, None], [0, 0], 1, none, 1.5)
    # MiniLM keeps the weight it was tuned with; the multilingual encoder uses 0.7.
    weights = {spec.subdir: spec.centroid_weight for spec in ENCODERS["minilm+use"]}
    assert weights == {"": 0.5, "use": 0.7}


def _random_index(n: int, dim: int, sizes: list[int]) -> ExampleIndex:
    rng = np.random.default_rng(7)
    examples = rng.standard_normal((n, dim)).astype(np.float32)
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    ids = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    none = Centering(overall=np.zeros(dim, dtype=np.float32), by_language={})
    return ExampleIndex(examples, [None] * n, ids.tolist(), len(sizes), none)


def test_leave_one_out_in_blocks_scores_each_example_without_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every example scored against the index with itself removed, whatever the block size;
    a label's only example scores -1 on it; callers get copies they may change."""
    sizes = [1, 9, 20, 3]
    index = _random_index(sum(sizes), 16, sizes)
    monkeypatch.setattr(classifier.scoring, "LEAVE_ONE_OUT_ROWS", 7)  # uneven blocks
    scores, own = index.leave_one_out()
    x, ids = index._examples, index._ids
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        if (ids[keep] == ids[i]).any():
            alone = ExampleIndex(
                x[keep], [None] * (len(x) - 1), ids[keep].tolist(), 4, index.centering
            )
            expected = alone.scores(x[i : i + 1], [None])[0]
        else:  # its label has nothing left: its own column is -1, the others as usual
            expected = index.scores(x[i : i + 1], [None])[0]
            expected[ids[i]] = -1.0
        np.testing.assert_allclose(scores[i], expected, atol=1e-5)
        assert own[i] == ids[i]
    scores[:] = 0
    np.testing.assert_array_equal(index.leave_one_out()[0] != 0, True)


def test_leave_one_out_of_a_pasted_catalogue_stays_within_memory() -> None:
    """20,000 examples: the whole similarity matrix would take 1.6 GB at once; in blocks the
    peak is a few dozen MB (a live reload must not take the pod over its memory limit)."""
    index = _random_index(20_000, 32, [20] * 8 + [19_840])
    tracemalloc.start()
    try:
        scores, _ = index.leave_one_out()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.shape == (20_000, 9)
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MB"
