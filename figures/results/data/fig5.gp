set terminal pngcairo size 1200,380 font 'Sans,10' noenhanced
set output 'figures/results/fig5.png'
set datafile separator ','
set multiplot layout 1,3
set grid
set key top right font ',8'
ours = 'build/reproduce/runs/eps_simple/rd.csv'
paper = 'figures/results/data/fig5_paper.dat'
sc = 1000 / 1000.0
set xlabel 'reverse steps received (of T = 1000)'
set ylabel 'distortion (RMSE, [0,255])'
plot ours u 1:5 w l lw 2 t 'ours', paper u ($1*sc):3 w lp pt 7 t 'paper (T = 1000, scaled)'
set ylabel 'rate (bits/dim)'
plot ours u 1:3 w l lw 2 t 'ours', paper u ($1*sc):2 w lp pt 7 t 'paper'
set xlabel 'rate (bits/dim)'
set ylabel 'distortion (RMSE, [0,255])'
plot ours u 3:5 w l lw 2 t 'ours', paper u 2:3 w lp pt 7 t 'paper'
unset multiplot
