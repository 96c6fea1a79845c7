"""mlesim: Monte Carlo simulation studies of estimators."""
