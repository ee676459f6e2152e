"""Full-ranking evaluation: metrics, subsets and the evaluator."""
