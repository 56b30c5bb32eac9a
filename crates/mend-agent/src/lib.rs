//! mend-agent: the agent loop. Not built yet (issue "The agent loop").
