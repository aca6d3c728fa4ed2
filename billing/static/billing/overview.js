/* Draws the billing overview's charts with Chart.js 2.9 (served by django-chartjs as
 * static/js/Chart.min.js, no CDN). The data comes from the page's json_script block
 * "billing-series": {labels, mrr: [{currency, data}], new, churned,
 * dunning: {recovered, lost, open, rate}, trials: {converted, not_converted, rate}}.
 * MRR points are major units (the page's text is formatted on the server); rates are
 * percentages or null. After drawing, each canvas carries what it shows in data-points
 * (JSON) and data-rendered="true", for people reading the page source and for the
 * browser test. */
(function () {
  "use strict";

  var PALETTE = ["#417690", "#e07b39", "#5b9c5b", "#9c5b9c", "#c9a227"];

  function cssVar(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function countAxis(stacked) {
    return {id: "count", position: "left", stacked: !!stacked,
            ticks: {beginAtZero: true, precision: 0},
            scaleLabel: {display: true, labelString: "subscriptions"}};
  }

  function rateAxis() {
    return {id: "rate", position: "right", ticks: {beginAtZero: true, min: 0, max: 100,
            callback: function (v) { return v + "%"; }},
            gridLines: {drawOnChartArea: false},
            scaleLabel: {display: true, labelString: "rate"}};
  }

  function rateLine(label, data, color) {
    return {type: "line", label: label, data: data, yAxisID: "rate", borderColor: color,
            backgroundColor: color, fill: false, lineTension: 0, pointRadius: 3, spanGaps: true};
  }

  function configs(series, colors) {
    return {
      mrr: {
        type: "line",
        data: {
          labels: series.labels,
          datasets: series.mrr.map(function (s, i) {
            var color = PALETTE[i % PALETTE.length];
            return {label: "MRR " + s.currency, data: s.data, borderColor: color,
                    backgroundColor: i === 0 ? colors.secondaryFill : "transparent",
                    fill: i === 0, lineTension: 0, pointRadius: 3};
          })
        },
        options: {scales: {yAxes: [{ticks: {beginAtZero: true},
                                    scaleLabel: {display: true, labelString: "per month"}}]}}
      },
      flow: {
        type: "bar",
        data: {
          labels: series.labels,
          datasets: [
            {label: "New", data: series["new"], backgroundColor: colors.secondary},
            {label: "Churned", data: series.churned, backgroundColor: colors.accent}
          ]
        },
        options: {scales: {yAxes: [countAxis(false)]}}
      },
      dunning: {
        type: "bar",
        data: {
          labels: series.labels,
          datasets: [
            {label: "Recovered", data: series.dunning.recovered, yAxisID: "count",
             backgroundColor: colors.good, stack: "episodes"},
            {label: "Lost", data: series.dunning.lost, yAxisID: "count",
             backgroundColor: colors.accent, stack: "episodes"},
            {label: "Still past due", data: series.dunning.open, yAxisID: "count",
             backgroundColor: colors.primary, stack: "episodes"},
            rateLine("Recovery rate", series.dunning.rate, colors.secondary)
          ]
        },
        options: {scales: {xAxes: [{stacked: true}], yAxes: [countAxis(true), rateAxis()]}}
      },
      trials: {
        type: "bar",
        data: {
          labels: series.labels,
          datasets: [
            {label: "Converted", data: series.trials.converted, yAxisID: "count",
             backgroundColor: colors.good, stack: "trials"},
            {label: "Not converted", data: series.trials.not_converted, yAxisID: "count",
             backgroundColor: colors.accent, stack: "trials"},
            rateLine("Conversion rate", series.trials.rate, colors.secondary)
          ]
        },
        options: {scales: {xAxes: [{stacked: true}], yAxes: [countAxis(true), rateAxis()]}}
      }
    };
  }

  function draw() {
    var source = document.getElementById("billing-series");
    var canvases = document.querySelectorAll("canvas[data-chart]");
    if (!source || !canvases.length) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      canvases.forEach(function (c) { c.setAttribute("data-rendered", "false"); });
      return;
    }
    var series = JSON.parse(source.textContent);
    var colors = {
      primary: cssVar("--primary", "#79aec8"),
      secondary: cssVar("--secondary", "#417690"),
      secondaryFill: "rgba(65, 118, 144, 0.15)",
      accent: "#e07b39",
      good: "#5b9c5b",
      text: cssVar("--body-quiet-color", "#666")
    };
    window.Chart.defaults.global.defaultFontColor = colors.text;
    window.Chart.defaults.global.animation.duration = 0;
    var all = configs(series, colors);
    canvases.forEach(function (canvas) {
      var config = all[canvas.getAttribute("data-chart")];
      if (!config) {
        return;
      }
      config.options.responsive = true;
      config.options.maintainAspectRatio = false;
      config.options.tooltips = {mode: "index", intersect: false};
      new window.Chart(canvas.getContext("2d"), config);
      canvas.setAttribute("data-points", JSON.stringify({
        labels: config.data.labels,
        datasets: config.data.datasets.map(function (d) { return {label: d.label, data: d.data}; })
      }));
      canvas.setAttribute("data-rendered", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
