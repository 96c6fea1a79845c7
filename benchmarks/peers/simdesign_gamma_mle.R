# SimDesign peer of `python -m mlesim truth=gamma 'n=[20,100]' replications=5000`:
# the gamma MLE of (shape, rate) at shape = 2, rate = 1 (conf/truth/gamma.yaml), one data
# set at a time by MASS::fitdistr(x, "gamma") (optim on the log-likelihood; SEs from the
# observed information), with bias, RMSE, empirical SE and Wald coverage per cell.
#
#   Rscript benchmarks/peers/simdesign_gamma_mle.R [replications = 5000] [n = 20,100]

source(file.path((function() {
  arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(arg)) dirname(normalizePath(sub("^--file=", "", arg[[1]]))) else "."
})(), "simdesign_common.R"))

opts <- peer_args(replications = 5000L, n = c(20L, 100L))

Design <- createDesign(n = opts$n)

Generate <- function(condition, fixed_objects) {
  theta <- fixed_objects$theta
  rgamma(condition$n, shape = theta[["shape"]], rate = theta[["rate"]])
}

Analyse <- function(condition, dat, fixed_objects) {
  fit <- suppressWarnings(MASS::fitdistr(dat, "gamma"))
  est <- unname(fit$estimate) # shape, rate
  se <- unname(fit$sd)
  c(shape = est[1], rate = est[2], se_shape = se[1], se_rate = se[2])
}

Summarise <- function(condition, results, fixed_objects) {
  theta <- fixed_objects$theta
  est <- as.matrix(results[, names(theta)])
  se <- as.matrix(results[, paste0("se_", names(theta))])
  c(
    bias = bias(est, theta),
    RMSE = RMSE(est, theta),
    empse = apply(est, 2, sd),
    coverage = wald_coverage(est, se, theta)
  )
}

run_peer(Design, opts$replications, Generate, Analyse, Summarise,
  fixed_objects = list(theta = c(shape = 2, rate = 1))
)
