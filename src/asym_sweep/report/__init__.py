"""The reporter (``python -m asym_sweep.report``, ``make report``): never trains.

Data flows one way:

    run folders --collect.py--> tidy tables (one row per run; one per run-epoch)
                --aggregate.py--> per (dataset, arch, method tag): means, Student-t CIs, time ratios
                --thesis.py--> beside the thesis' published values (thesis_reference.csv)
                --tables.py / figures.py--> Markdown, HTML, LaTeX tables; plotly figures
                --page.py--> outputs/report/index.html

Methods are identified by their tag (``topk-k40``, ``dropout-p0.4``...), so any
rule added later appears in every table and figure without changes here.
"""
