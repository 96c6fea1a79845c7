# Shared helpers of the SimDesign peer scripts (benchmarks/bench_speed.py, goal 4 of issue 12).
#
# Each peer script is run as a whole process, `Rscript <script> [replications] [n,n,...]`,
# the way a user runs a SimDesign study: it builds a Design of the same cells as the
# mlesim command it is compared with, runs runSimulation() on one core
# (parallel = FALSE), prints the summary and, last, one line
#   runSimulation seconds: <elapsed>
# that bench_speed.py reads (it times the whole process itself).

suppressPackageStartupMessages(library(SimDesign))

peer_args <- function(replications, n) {
  args <- commandArgs(trailingOnly = TRUE)
  if (length(args) >= 1) replications <- as.integer(args[[1]])
  if (length(args) >= 2) n <- as.integer(strsplit(args[[2]], ",")[[1]])
  list(replications = replications, n = n)
}

# Share of 95 % Wald intervals est ± z·se that contain theta, per column (as mlesim's
# `coverage`, over the replicates with a finite SE).
wald_coverage <- function(est, se, theta, level = 0.95) {
  z <- qnorm(1 - (1 - level) / 2)
  out <- sapply(seq_along(theta), function(j) {
    ok <- is.finite(se[, j])
    mean(abs(est[ok, j] - theta[[j]]) <= z * se[ok, j])
  })
  setNames(out, names(theta))
}

# runSimulation() on one core with one seed per design row; prints the results table and
# the elapsed seconds of runSimulation() alone.
run_peer <- function(design, replications, generate, analyse, summarise, fixed_objects,
                     seed = 2026L) {
  t0 <- proc.time()[["elapsed"]]
  res <- runSimulation(
    design = design, replications = replications, generate = generate,
    analyse = analyse, summarise = summarise, fixed_objects = fixed_objects,
    parallel = FALSE, seed = seed + seq_len(nrow(design)), verbose = FALSE
  )
  secs <- proc.time()[["elapsed"]] - t0
  print(as.data.frame(res))
  cat(sprintf("runSimulation seconds: %.3f\n", secs))
  invisible(res)
}
