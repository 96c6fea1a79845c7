# SimDesign peer of `python -m mlesim truth=student_t 'n=[20,100]' replications=2000`:
# the Student-t MLE of (mu, sigma, nu) at mu = 0, sigma = 1, nu = 5
# (conf/truth/student_t.yaml), one data set at a time by MASS::fitdistr(x, "t")
# (optim's BFGS on the log-likelihood; SEs from the observed information), with bias,
# RMSE, empirical SE and Wald coverage per cell.
#
#   Rscript benchmarks/peers/simdesign_t_mle.R [replications = 2000] [n = 20,100]
#
# A fit that errors (nu running off to infinity, a singular Hessian) makes SimDesign redraw
# the data set, as runSimulation() does for any error in Analyse(); mlesim records such a
# fit as a failure instead (nu_hat = inf), so the replicate sets differ there.

source(file.path((function() {
  arg <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(arg)) dirname(normalizePath(sub("^--file=", "", arg[[1]]))) else "."
})(), "simdesign_common.R"))

opts <- peer_args(replications = 2000L, n = c(20L, 100L))

Design <- createDesign(n = opts$n)

Generate <- function(condition, fixed_objects) {
  theta <- fixed_objects$theta
  theta[["mu"]] + theta[["sigma"]] * rt(condition$n, df = theta[["nu"]])
}

Analyse <- function(condition, dat, fixed_objects) {
  fit <- suppressWarnings(MASS::fitdistr(dat, "t"))
  est <- unname(fit$estimate) # m, s, df
  se <- unname(fit$sd)
  c(mu = est[1], sigma = est[2], nu = est[3], se_mu = se[1], se_sigma = se[2], se_nu = se[3])
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
  fixed_objects = list(theta = c(mu = 0, sigma = 1, nu = 5))
)
