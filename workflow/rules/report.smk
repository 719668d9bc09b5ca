# Stage: report. `snakemake --report results/report.html` collects every table and figure that
# the rules flag with report(...) (captions in workflow/report/*.rst) under this description.


report: "../report/workflow.rst"
