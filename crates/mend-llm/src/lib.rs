//! mend-llm: the model layer. Not built yet (issue "The model layer").
