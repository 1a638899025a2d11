"""The verdict rule: ``unknown`` above the threshold, else ``uncertain`` below the confidence, else the class."""
import numpy as np

from device.inference.verdict import UNCERTAIN, UNKNOWN, is_unknown, verdict


def test_unknown_wins_over_any_confidence():
    assert verdict("alpha", 0.99, True, 0.8) == UNKNOWN
    assert verdict("alpha", 0.10, True, 0.8) == UNKNOWN


def test_below_the_confidence_is_uncertain_and_at_it_the_class():
    assert verdict("alpha", 0.79, False, 0.8) == UNCERTAIN
    assert verdict("alpha", 0.80, False, 0.8) == "alpha"
    assert verdict(2, 0.95, False, 0.8) == 2  # class indices pass through as they are


def test_unknown_is_strictly_above_the_threshold():
    assert is_unknown(3.0, 2.5) is True
    assert is_unknown(2.5, 2.5) is False
    np.testing.assert_array_equal(is_unknown(np.array([1.0, 2.5, 2.6]), 2.5), [False, False, True])


def test_the_classifiers_unknown_flag_is_the_rule_on_its_score():
    from device.inference.bundle import load_bundle
    from device.inference.classifier import Classifier
    from device.inference.readers import read_spectra

    bundle = load_bundle("models/sers-pesticides")
    classifier = Classifier(bundle)
    path, label = bundle.examples[0]
    p = classifier.classify(read_spectra(path)[0])
    assert not p.unknown and not is_unknown(p.ood_score, bundle.ood.threshold)
    assert verdict(p.label, p.confidence, p.unknown, 0.0) == label
    assert verdict(p.label, p.confidence, p.unknown, 1.01) == UNCERTAIN
