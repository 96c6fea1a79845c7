# SimDesign peer of
# `python -m mlesim experiment=variance_bias 'n=[2,5,10,30,100,1000]' replications=20000`:
# normal data (mu = 0, sigma2 = 1; conf/truth/normal.yaml) and the preset's three
# estimators of sigma2 in closed form, from xbar and SS = sum((x - xbar)^2):
#   mle      SS / n                                   (and mu_hat = xbar)
#   unbiased SS / (n - 1)
#   map      (scale + SS/2) / (shape + n/2 + 1)       inverse-gamma(shape 2, scale 1) prior
#            on sigma2, flat on mu: the joint posterior mode (mlesim/priors.py)
# with their normal-theory SEs (mlesim's: sqrt(2) sigma2_hat / sqrt(n) for the MLE,
# sqrt(2 s^4 / (n - 1)) for s^2, the Laplace approximation for the MAP), and bias,
# RMSE, empirical SE and Wald coverage per cell.
#
#   Rscript benchmarks/peers/simdesign_variance_bias.R [replications = 20000] [n = 2,5,10,30,100,1000]

source(file.path((function() {
  arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(arg)) dirname(normalizePath(sub("^--file=", "", arg[[1]]))) else "."
})(), "simdesign_common.R"))

opts <- peer_args(replications = 20000L, n = c(2L, 5L, 10L, 30L, 100L, 1000L))

Design <- createDesign(n = opts$n)

Generate <- function(condition, fixed_objects) {
  rnorm(condition$n, mean = fixed_objects$mu, sd = sqrt(fixed_objects$sigma2))
}

Analyse <- function(condition, dat, fixed_objects) {
  n <- length(dat)
  xbar <- mean(dat)
  ss <- sum((dat - xbar)^2)
  shape <- fixed_objects$shape
  scale <- fixed_objects$scale
  mle <- ss / n
  s2 <- ss / (n - 1)
  map <- (scale + ss / 2) / (shape + n / 2 + 1)
  # curvature of the log posterior in sigma2 at its mode: (shape + n/2 + 1) / map^2
  c(
    mle_mu = xbar, mle = mle, unbiased = s2, map = map,
    se_mle_mu = sqrt(mle / n), se_mle = sqrt(2 / n) * mle,
    se_unbiased = sqrt(2 * s2^2 / (n - 1)), se_map = map / sqrt(shape + n / 2 + 1)
  )
}

Summarise <- function(condition, results, fixed_objects) {
  theta <- c(mle_mu = fixed_objects$mu, mle = fixed_objects$sigma2,
             unbiased = fixed_objects$sigma2, map = fixed_objects$sigma2)
  est <- as.matrix(results[, names(theta)])
  se <- as.matrix(results[, paste0("se_", names(theta))])
  c(
    bias = bias(est, theta),
    MSE = RMSE(est, theta)^2,
    empse = apply(est, 2, sd),
    coverage = wald_coverage(est, se, theta)
  )
}

run_peer(Design, opts$replications, Generate, Analyse, Summarise,
  fixed_objects = list(mu = 0, sigma2 = 1, shape = 2, scale = 1)
)
