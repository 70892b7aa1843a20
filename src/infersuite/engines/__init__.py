"""What is under test: runtimes that turn token ids into logits."""
