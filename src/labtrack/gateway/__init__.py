"""The AI gateway (MLflow Deployments for LLMs): named endpoints that route to the
cluster's OpenAI-compatible model servers, served by the labtrack server or alone
(``labtrack gateway --config gateway.yaml``)."""
