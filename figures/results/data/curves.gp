set terminal pngcairo size 1000,420 font 'Sans,10' noenhanced
set output 'figures/results/curves.png'
set multiplot layout 1,2
set logscale y
set grid
set key top right font ',8'
set xlabel 'training step'
set title 'training loss (medians over windows)'
set ylabel 'loss (each run its own objective)'
plot 'figures/results/data/curves.dat' index 0 u 1:2 w l lw 1.5 t 'eps_simple', 'figures/results/data/curves.dat' index 1 u 1:2 w l lw 1.5 t 'eps_vlb_fixed', 'figures/results/data/curves.dat' index 2 u 1:2 w l lw 1.5 t 'eps_vlb_learned', 'figures/results/data/curves.dat' index 3 u 1:2 w l lw 1.5 t 'mu_vlb_learned', 'figures/results/data/curves.dat' index 4 u 1:2 w l lw 1.5 t 'mu_vlb_fixed', 'figures/results/data/curves.dat' index 5 u 1:2 w l lw 1.5 t 'mu_mse'
set title 'gradient norm before clipping (medians over windows)'
set ylabel 'gradient norm'
plot 'figures/results/data/curves.dat' index 0 u 1:3 w l lw 1.5 t 'eps_simple', 'figures/results/data/curves.dat' index 1 u 1:3 w l lw 1.5 t 'eps_vlb_fixed', 'figures/results/data/curves.dat' index 2 u 1:3 w l lw 1.5 t 'eps_vlb_learned', 'figures/results/data/curves.dat' index 3 u 1:3 w l lw 1.5 t 'mu_vlb_learned', 'figures/results/data/curves.dat' index 4 u 1:3 w l lw 1.5 t 'mu_vlb_fixed', 'figures/results/data/curves.dat' index 5 u 1:3 w l lw 1.5 t 'mu_mse'
unset multiplot
