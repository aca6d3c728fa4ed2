/* Draws the analytics page's charts with Chart.js 2.9 (served by django-chartjs as
 * static/js/Chart.min.js). The data comes from the page's json_script block
 * "analytics-series": {labels, validations, redemptions, discount}.
 * After drawing, each canvas carries what it shows in data-points (JSON) and
 * data-rendered="true", for people reading the page source and for the browser test. */
(function () {
  "use strict";

  function cssVar(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function countAxis(id, position) {
    return {id: id, position: position, ticks: {beginAtZero: true, precision: 0},
            scaleLabel: {display: true, labelString: "count"}};
  }

  function configs(series, colors) {
    return {
      redemptions: {
        type: "bar",
        data: {
          labels: series.labels,
          datasets: [
            {type: "bar", label: "Redemptions", data: series.redemptions, yAxisID: "count",
             backgroundColor: colors.primary, borderColor: colors.secondary, borderWidth: 1},
            {type: "line", label: "Discount", data: series.discount, yAxisID: "money",
             borderColor: colors.accent, backgroundColor: colors.accent, fill: false,
             lineTension: 0, pointRadius: 2}
          ]
        },
        options: {
          scales: {
            xAxes: [{ticks: {fontColor: colors.text}}],
            yAxes: [countAxis("count", "left"),
                    {id: "money", position: "right", ticks: {beginAtZero: true},
                     gridLines: {drawOnChartArea: false},
                     scaleLabel: {display: true, labelString: "discount"}}]
          }
        }
      },
      funnel: {
        type: "line",
        data: {
          labels: series.labels,
          datasets: [
            {label: "Validation attempts", data: series.validations, borderColor: colors.secondary,
             backgroundColor: colors.secondaryFill, fill: true, lineTension: 0, pointRadius: 2},
            {label: "Redemptions", data: series.redemptions, borderColor: colors.accent,
             backgroundColor: colors.accent, fill: false, lineTension: 0, pointRadius: 2}
          ]
        },
        options: {scales: {yAxes: [countAxis("count", "left")]}}
      }
    };
  }

  function draw() {
    var source = document.getElementById("analytics-series");
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
