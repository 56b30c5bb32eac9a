//! mend-swebench: the SWE-bench harness. Not built yet (issue "SWE-bench harness").
