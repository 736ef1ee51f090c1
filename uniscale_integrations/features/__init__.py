"""The framework-free engine: space, features, bandit, policies, cost, reward, answers, engine."""
