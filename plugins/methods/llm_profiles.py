"""The ``small`` profile of the LLM methods (registers nothing; ``plugins.methods.llm`` keeps
its own copy until its archived rows are next refitted): Gemma-3-270M through LoRA r16, the
adapters and the new-token embedding rows learning, everything else at the tiny budget."""

SMALL = {"recommender.model_path": "gemma3-270m", "recommender.lora_rank": 16,
         "recommender.learning_rate": 5e-4, "recommender.batch_size": 64}
